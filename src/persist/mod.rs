//! Persistence: a journal of checksummed records and compacted snapshots on disk
//! (`record.rs` is the format, `replay.rs` turns records back into state, `load.rs`
//! reads the files at start-up and recovers what damage left, `store.rs` owns the files
//! and the thread that writes and syncs them, `lock.rs` keeps a second broker out,
//! `fsio.rs` is every write, with a fault hook for tests). The broker writes records
//! (`broker::Journal`); the loop hands them to the store.

pub mod fsio;
pub mod fuzz;
pub mod load;
mod lock;
pub mod record;
pub mod replay;
pub mod store;

pub use load::Loaded;
pub use replay::State;
pub use store::{Status, Store, StoreOptions, SyncMode};
