//! How each target kind takes a consistent copy of its data and puts it back. Sources only
//! produce and consume byte streams; stores, hashing and compression are the actions' job.
//! (gcp_disk is the exception by nature: the copy is a snapshot the cloud keeps.)

pub mod directory;
pub mod gcp_disk;
pub mod remote_directory; // directory targets on another host, over SSH
pub mod remote_sqlite; // sqlite targets on another host, over SSH
pub mod sqlite;
