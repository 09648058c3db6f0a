//! The kernel's btrfs calls a snapshot needs, each a plain `io::Result`: take a read-only
//! snapshot, create and delete a subvolume, count the subvolumes inside one, and tell the
//! filesystem a path is on. Through the ioctls themselves rather than the `btrfs` program:
//! lifeboat needs nothing installed beside it (its container image included), there is no
//! output to parse, and a failure is the kernel's own error number.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::mem::size_of;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `statfs`'s `f_type` of a btrfs filesystem.
pub(super) const SUPER_MAGIC: i64 = 0x9123_683E;
/// The inode number of every btrfs subvolume's root directory.
pub(super) const SUBVOLUME_ROOT_INODE: u64 = 256;

// From <linux/btrfs.h>: _IOW(0x94, 23, struct btrfs_ioctl_vol_args_v2),
// _IOW(0x94, 14 and 15, struct btrfs_ioctl_vol_args), _IOWR(0x94, 61, the rootref args).
const IOC_SNAP_CREATE_V2: u64 = 0x5000_9417;
const IOC_SUBVOL_CREATE: u64 = 0x5000_940e;
const IOC_SNAP_DESTROY: u64 = 0x5000_940f;
const IOC_GET_SUBVOL_ROOTREF: u64 = 0xd000_943d;
const SUBVOL_RDONLY: u64 = 1 << 1;

/// `struct btrfs_ioctl_vol_args_v2`: a snapshot's source, flags and name.
#[repr(C)]
struct SnapshotArgs {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; 4040],
}

/// `struct btrfs_ioctl_vol_args`: the name of a subvolume to create or delete.
#[repr(C)]
struct NameArgs {
    fd: i64,
    name: [u8; 4088],
}

/// `struct btrfs_ioctl_get_subvol_rootref_args`: the subvolumes inside a subvolume.
#[repr(C)]
struct RootrefArgs {
    min_treeid: u64,
    rootref: [[u64; 2]; 255],
    num_items: u8,
    align: [u8; 7],
}

const _: () = assert!(size_of::<SnapshotArgs>() == 4096);
const _: () = assert!(size_of::<NameArgs>() == 4096);
const _: () = assert!(size_of::<RootrefArgs>() == 4096);

/// Copy `name` into a kernel struct's name field, leaving room for the closing NUL.
fn put_name(field: &mut [u8], name: &OsStr) -> io::Result<()> {
    let bytes = name.as_bytes();
    if bytes.len() >= field.len() || bytes.contains(&0) || bytes.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a usable subvolume name",
        ));
    }
    field[..bytes.len()].copy_from_slice(bytes);
    Ok(())
}

/// `ioctl(fd, request, arg)`, its failure as the error number.
///
/// # Safety
/// `arg` must be the struct the kernel expects for `request`, laid out as it expects.
unsafe fn call<T>(fd: &File, request: u64, arg: &mut T) -> io::Result<()> {
    // SAFETY: the caller passes the request's own struct; the descriptor is open.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg as *mut T) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A read-only snapshot of the subvolume open as `source`, named `name` in the directory
/// open as `beside`.
pub(super) fn snapshot_readonly(source: &File, beside: &File, name: &OsStr) -> io::Result<()> {
    let mut args = SnapshotArgs {
        fd: source.as_raw_fd() as i64,
        transid: 0,
        flags: SUBVOL_RDONLY,
        unused: [0; 4],
        name: [0; 4040],
    };
    put_name(&mut args.name, name)?;
    // SAFETY: SNAP_CREATE_V2 takes `btrfs_ioctl_vol_args_v2`, mirrored and size-checked above.
    unsafe { call(beside, IOC_SNAP_CREATE_V2, &mut args) }
}

/// A new, empty subvolume named `name` in the directory open as `beside`.
pub(super) fn create_subvolume(beside: &File, name: &OsStr) -> io::Result<()> {
    let mut args = NameArgs {
        fd: 0,
        name: [0; 4088],
    };
    put_name(&mut args.name, name)?;
    // SAFETY: SUBVOL_CREATE takes `btrfs_ioctl_vol_args`, mirrored and size-checked above.
    unsafe { call(beside, IOC_SUBVOL_CREATE, &mut args) }
}

/// Delete the subvolume (or snapshot) named `name` in the directory open as `beside`.
pub(super) fn delete_subvolume(beside: &File, name: &OsStr) -> io::Result<()> {
    let mut args = NameArgs {
        fd: 0,
        name: [0; 4088],
    };
    put_name(&mut args.name, name)?;
    // SAFETY: SNAP_DESTROY takes `btrfs_ioctl_vol_args`, mirrored and size-checked above.
    unsafe { call(beside, IOC_SNAP_DESTROY, &mut args) }
}

/// How many subvolumes are inside the subvolume open as `dir` (255 means "at least").
pub(super) fn nested_subvolumes(dir: &File) -> io::Result<usize> {
    // SAFETY: all-zero is a valid value of this plain struct of integers.
    let mut args: Box<RootrefArgs> = Box::new(unsafe { std::mem::zeroed() });
    // SAFETY: GET_SUBVOL_ROOTREF takes this struct, mirrored and size-checked above.
    match unsafe { call(dir, IOC_GET_SUBVOL_ROOTREF, &mut *args) } {
        // EOVERFLOW: more than fit in one answer, which is already an answer.
        Err(e) if e.raw_os_error() != Some(libc::EOVERFLOW) => Err(e),
        _ => Ok(args.num_items as usize),
    }
}

/// `statfs`'s filesystem type of `path`.
pub(super) fn filesystem_type(path: &Path) -> io::Result<i64> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the path"))?;
    // SAFETY: all-zero is a valid `statfs`.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a struct to fill.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as i64)
}

/// The filesystems a path is most often on, named; others by their number.
pub(super) fn filesystem_name(magic: i64) -> String {
    match magic {
        0xEF53 => "ext4".into(),
        0x0102_1994 => "tmpfs".into(),
        0x5846_5342 => "xfs".into(),
        0x794C_7630 => "overlayfs".into(),
        0x2FC1_2FC1 => "zfs".into(),
        0x6969 => "nfs".into(),
        other => format!("a filesystem of type {other:#x}"),
    }
}

/// Whether this process may delete a read-only snapshot: CAP_SYS_ADMIN in its effective
/// set (root has it). When that cannot be read, the kernel is left to answer.
pub(super) fn may_delete_snapshots() -> bool {
    const CAP_SYS_ADMIN: u32 = 21;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return true;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_none_or(|caps| caps & (1 << CAP_SYS_ADMIN) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_do_not_fit_or_hold_a_nul_are_refused_before_the_kernel_sees_them() {
        let mut field = [0u8; 8];
        assert!(put_name(&mut field, OsStr::new("1234567")).is_ok());
        assert_eq!(&field, b"1234567\0");
        assert!(put_name(&mut [0u8; 8], OsStr::new("12345678")).is_err());
        assert!(put_name(&mut [0u8; 8], OsStr::new("a\0b")).is_err());
        assert!(put_name(&mut [0u8; 8], OsStr::new("")).is_err());
    }
}
