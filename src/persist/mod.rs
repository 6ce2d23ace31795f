//! Persistence: a journal of checksummed records and compacted snapshots on disk
//! (`record.rs` is the format, `replay.rs` turns records back into state, `store.rs`
//! owns the files and the thread that writes and syncs them). The broker writes records
//! (`broker::Journal`); the loop hands them to the store.

pub mod fuzz;
pub mod record;
pub mod replay;
pub mod store;

pub use replay::State;
pub use store::{Store, StoreOptions, SyncMode};
