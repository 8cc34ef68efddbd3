//! Customer import: any file (bytes, not only UTF-8) imported into an
//! in-memory SQLite store must never panic. Rejected rows and errors such as
//! "not UTF-8" are fine; that is the importer doing its job.
//!
//! One migrated store serves [`INPUTS_PER_STORE`] inputs in a row (a fresh
//! store per input runs at ~75 inputs/s, most of it migrating), then a fresh
//! one is made. Inputs therefore meet customers from earlier inputs (updates,
//! duplicate keys), which is what real imports do; a crash found that way is
//! replayed on a fresh store first (libFuzzer runs the artifact alone).
#![no_main]

use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

use libfuzzer_sys::fuzz_target;
use outreach::import::{ColumnRules, ImportOptions, import_customers};
use outreach::store::Store;

const INPUTS_PER_STORE: u32 = 200;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
});

/// One file per fuzzing process, rewritten for every input.
static FILE: LazyLock<PathBuf> = LazyLock::new(|| {
    std::env::temp_dir().join(format!("outreach-fuzz-import-{}.csv", std::process::id()))
});

/// The store and how many inputs it has seen.
static STORE: Mutex<Option<(Store, u32)>> = Mutex::new(None);

async fn fresh_store() -> Store {
    let store = Store::connect("sqlite::memory:", 1).await.unwrap();
    store.migrate().await.unwrap();
    // The import checks the list of forgotten people, keyed with this.
    let key = outreach::secret::Secret::from_bytes(vec![7; 32]);
    store.use_suppression_key(&key).await.unwrap();
    store
}

fuzz_target!(|data: &[u8]| {
    std::fs::write(&*FILE, data).unwrap();
    let mut slot = STORE.lock().unwrap();
    RUNTIME.block_on(async {
        if slot
            .as_ref()
            .is_none_or(|(_, used)| *used >= INPUTS_PER_STORE)
        {
            if let Some((old, _)) = slot.take() {
                old.close().await;
            }
            *slot = Some((fresh_store().await, 0));
        }
        let (store, used) = slot.as_mut().unwrap();
        *used += 1;
        let columns = ColumnRules::default();
        let options = ImportOptions {
            dry_run: false,
            staff_ids: ["maria", "jonas"].into_iter().map(String::from).collect(),
            default_consent_source: "fuzz".into(),
            columns: &columns,
            encoding: None,
            sheet: None,
            region: Some("de"),
            recorded_by: "fuzz".into(),
            progress: None,
        };
        let _ = import_customers(store, &FILE, options).await;
    });
});
