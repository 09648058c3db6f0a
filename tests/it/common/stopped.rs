//! The real binary stopped at a known point: its stderr is a pipe whose buffer is already
//! full and its log filter (`LIFEBOAT_LOG`) lets through only the one line written at that
//! point, so the process blocks there until the test drains the pipe. Nothing waits on the
//! clock.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};

/// A pipe whose buffer is already full: a process writing to it blocks until it is read.
/// Returns (read end, write end).
pub fn full_pipe() -> (File, File) {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (read, write) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    let fd = write.as_raw_fd();
    let set_flags = |flags: i32| unsafe { libc::fcntl(fd, libc::F_SETFL, flags) };
    set_flags(libc::O_NONBLOCK);
    for chunk in [4096, 1] {
        while (&write).write(&vec![b'.'; chunk]).is_ok() {}
    }
    set_flags(0);
    (read, write)
}

/// Let a stopped process go on: read its stderr to the end in the background; the text
/// it wrote, without the filler.
pub fn release(stderr: File) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = (&stderr).read_to_end(&mut all);
        String::from_utf8_lossy(&all)
            .trim_start_matches('.')
            .to_string()
    })
}
