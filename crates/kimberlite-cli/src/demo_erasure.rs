//! The demo's last step: a patient's records sealed with the patient's own key, the patient
//! erased on request, and the chain still intact with an old proof still valid
//! (`docs/COMPLIANCE.md`, "Erasure").

use std::sync::Arc;

use kimberlite::proof::verify_inclusion;
use kimberlite::sealed::{Content, MasterKey, SubjectKeys};
use kimberlite::{ExpectedOffset, Kimberlite};

use crate::display::short_hash;
use crate::error::CliError;

/// The stream of the demo's sealed records.
const RECORDS_STREAM: &str = "patient-records";
/// The patient erased.
const PATIENT: &str = "P-00042";

/// Step 7 on `store`: seals three records for a patient, takes a proof, erases the patient,
/// reads the records back as erased, verifies, checks the old proof. The master key stays in
/// memory: the demo's records are its only sealed events.
pub fn erase_one_patient(store: &Kimberlite) -> Result<(), CliError> {
    let (master, _) = MasterKey::generate();
    let keys = SubjectKeys::open(store, Arc::new(master))?;
    let id = store.create_stream(RECORDS_STREAM)?;
    let records = [
        r#"{"patient":"P-00042","note":"admitted, chest pain"}"#,
        r#"{"patient":"P-00042","note":"ECG normal, discharged"}"#,
    ];
    keys.append(id, PATIENT, records, ExpectedOffset::NoStream)?;
    keys.append(
        id,
        "P-00043",
        [r#"{"patient":"P-00043","note":"follow-up"}"#],
        ExpectedOffset::Any,
    )?;
    let size = store.head(id)?.next_offset.as_u64();
    let proof = store.inclusion_proof(id, 0.into(), size)?;
    outln!(
        "9. Sealed {size} records in \"{RECORDS_STREAM}\", each with its patient's own key; a \
         reader without the master key sees only that they are sealed."
    );
    let receipt = keys.erase(PATIENT, "demo")?;
    outln!(
        "   Erased patient {PATIENT} on request: key {} destroyed; {} records can never be read \
         again; recorded at offset {} of \"_erasure\" (chain hash {}).",
        receipt.key_id,
        receipt.events,
        receipt.offset,
        short_hash(Some(receipt.chain_hash))
    );
    for opened in keys.read(id, 0.into(), u64::MAX)? {
        let shown = match &opened.content {
            Content::Erased { erasure, .. } => {
                format!("erased (record at offset {} of _erasure)", erasure.offset)
            }
            Content::Opened { payload, .. } => String::from_utf8_lossy(payload).into_owned(),
            other => format!("{other:?}"),
        };
        outln!("     offset {}: {shown}", opened.offset);
    }
    let intact = store.verify_all()?.is_intact();
    let still = verify_inclusion(&proof.leaf_hash, 0, size, &proof.hashes, &proof.root).is_ok()
        && store.inclusion_proof(id, 0.into(), size)? == proof;
    outln!(
        "   The chain still verifies {}; the proof of offset 0 taken before the erasure still \
         verifies: {}.",
        if intact { "INTACT" } else { "NOT INTACT" },
        if still { "yes" } else { "NO" }
    );
    Ok(())
}
