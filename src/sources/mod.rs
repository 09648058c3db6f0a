//! How each target kind takes a consistent copy of its data and puts it back. Sources only
//! produce and consume byte streams; stores, hashing and compression are the actions' job.

pub mod directory;
pub mod sqlite;
