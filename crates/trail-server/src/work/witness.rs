//! The witness client: asks the witnesses of `[witness] policy` to cosign the
//! installation log's newest checkpoint (C2SP `tlog-witness` `add-checkpoint`), with a
//! consistency proof from the size each last cosigned, and keeps their cosignatures
//! with the checkpoint. Ingest never waits for it: it runs beside, a few times a
//! second, in every server; a lease in the store lets one server at a time submit to
//! each witness.
//!
//! Answers, as the spec has them: 200 a cosignature (checked against the witness's key
//! before it is kept); 409 the size the witness knows (retried from there at once);
//! 422 a finding (`witness:refused` recorded, which the `witness_refused` alert rule
//! sends); 403/404 a configuration error (health shows it); no answer in time, retried
//! with a doubling backoff. The view (`WitnessView`) says for `/healthz` and the page
//! how far the newest witnessed checkpoint lags the newest signed one, and records
//! `witness:lagging` once per episode past `[witness] lagging_after`.

use std::{collections::BTreeSet, sync::Mutex, time::Duration};

use serde::Serialize;
use serde_json::json;
use trail_core::{
    cosignature::{self, AddCheckpoint},
    merkle,
    policy::{Policy, PolicyWitness},
    Timestamp,
};
use trail_store::{
    witnesses::{WitnessAnswer, WitnessState, WitnessStatus},
    DynStore, SignedCheckpoint,
};

use super::{tiles::installation_nodes_for, Services, WorkError};
use crate::WitnessConfig;

/// How often the newest checkpoint is looked for.
const EVERY: Duration = Duration::from_millis(250);

/// The longest backoff between attempts at a failing witness.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How many cosigned sizes are looked through for the newest witnessed one.
const LOOK_BACK: usize = 64;

/// What this server last saw of the witnesses, for health and the page.
#[derive(Default)]
pub struct WitnessView {
    inner: Mutex<Seen>,
}

#[derive(Default, Clone)]
struct Seen {
    signed: u64,
    witnessed: u64,
    /// When this server first saw a signed size beyond the witnessed one.
    unwitnessed_since: Option<Timestamp>,
    lagging_recorded: bool,
    witnesses: Vec<WitnessState>,
}

/// The witnesses' state as `/healthz` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct WitnessHealth {
    /// The policy's quorum, e.g. `2 of (w1, w2, w3)`.
    pub quorum: String,
    /// The installation log's newest signed size, and the newest with a quorum.
    pub newest_signed: u64,
    pub newest_witnessed: u64,
    /// Seconds the newest witnessed checkpoint has lagged the signed one (0: caught up).
    pub lag_seconds: u64,
    /// Past `[witness] lagging_after`.
    pub lagging: bool,
    pub witnesses: Vec<WitnessHealthEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WitnessHealthEntry {
    pub name: String,
    /// The size it last cosigned.
    pub size: u64,
    /// pending, cosigned, refused, misconfigured or unreachable.
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl WitnessHealth {
    /// Whether health should say `degraded`: lagging, or a witness refused the log or
    /// is misconfigured.
    pub fn degraded(&self) -> bool {
        self.lagging || self.witnesses.iter().any(|w| w.status == "refused" || w.status == "misconfigured")
    }
}

/// The witnesses' health (`None` without `[witness]`).
pub fn health(st: &Services) -> Option<WitnessHealth> {
    let cfg = st.config.witness.as_ref()?;
    let seen = st.witness_view.inner.lock().map(|s| s.clone()).unwrap_or_default();
    let now = (st.clock)();
    let lag = seen.unwitnessed_since.map_or(0, |t| ((now.0 - t.0).max(0) / 1_000_000) as u64);
    let witnesses = cfg
        .policy
        .witnesses
        .iter()
        .map(|w| {
            let s = seen.witnesses.iter().find(|s| s.name == w.name);
            WitnessHealthEntry {
                name: w.name.clone(),
                size: s.map_or(0, |s| s.size),
                status: s.map_or("pending", |s| s.status.as_str()).to_string(),
                detail: s.map(|s| s.detail.clone()).unwrap_or_default(),
            }
        })
        .collect();
    Some(WitnessHealth {
        quorum: cfg.policy.describe_quorum(),
        newest_signed: seen.signed,
        newest_witnessed: seen.witnessed,
        lag_seconds: lag,
        lagging: lag >= cfg.lagging_after.as_secs(),
        witnesses,
    })
}

/// The installation checkpoint of `size` with every cosignature kept for it, as extra
/// signature lines.
pub async fn cosigned_note(store: &DynStore, cp: &SignedCheckpoint) -> Result<String, WorkError> {
    let mut note = cp.note.clone();
    for (_, line) in store.cosignatures(cp.size).await? {
        note.push_str(&line);
    }
    Ok(note)
}

/// The newest installation checkpoint whose cosignatures meet the policy's quorum
/// (`None` before one is witnessed).
pub async fn newest_witnessed(store: &DynStore, policy: &Policy) -> Result<Option<SignedCheckpoint>, WorkError> {
    for (size, names) in store.cosigned_sizes(LOOK_BACK).await? {
        let set: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        if policy.quorum_met(&set) {
            return Ok(store.installation_checkpoint(Some(size)).await?);
        }
    }
    Ok(None)
}

/// The client's loop: every few hundred milliseconds, submit the newest checkpoint to
/// each witness that has not cosigned it and is due, then refresh the view.
pub async fn run(st: Services) {
    let Some(cfg) = st.config.witness.clone() else { return };
    let client = match super::outbound::witness_client(cfg.timeout) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the witness client");
            return;
        }
    };
    loop {
        if let Err(e) = round(&st, &cfg, &client).await {
            tracing::warn!(error = %e, "witness round failed");
        }
        tokio::time::sleep(EVERY).await;
    }
}

async fn round(st: &Services, cfg: &WitnessConfig, client: &reqwest::Client) -> Result<(), WorkError> {
    let Some(newest) = st.store.installation_checkpoint(None).await? else { return Ok(()) };
    let states = st.store.witness_states().await?;
    let now = (st.clock)();
    let due: Vec<&PolicyWitness> = cfg
        .policy
        .witnesses
        .iter()
        .filter(|w| w.url.is_some())
        .filter(|w| match states.iter().find(|s| s.name == w.name) {
            None => true,
            Some(s) => s.retry_at <= now && !(s.size == newest.size && s.status == WitnessStatus::Cosigned),
        })
        .collect();
    let submissions = due.into_iter().map(|w| submit(st, cfg, client, w, &newest));
    for r in futures::future::join_all(submissions).await {
        if let Err(e) = r {
            tracing::warn!(error = %e, "a witness submission failed");
        }
    }
    refresh_view(st, cfg, newest.size).await
}

/// One witness: lease, submit (again from the size a 409 names), record the answer.
async fn submit(
    st: &Services,
    cfg: &WitnessConfig,
    client: &reqwest::Client,
    w: &PolicyWitness,
    newest: &SignedCheckpoint,
) -> Result<(), WorkError> {
    let now = (st.clock)();
    let lease = Timestamp(now.0 + (cfg.timeout.as_micros() as i64) * 3 + 5_000_000);
    let Some(state) = st.store.lease_witness(&w.name, &st.streams.owner, now, lease).await? else {
        return Ok(()); // another server is at it
    };
    let mut old = state.size;
    let mut answer = None;
    for _ in 0..3 {
        let outcome = attempt(st, client, w, newest, old).await;
        match outcome {
            Outcome::Conflict(known) if known != old && known <= newest.size => old = known,
            other => {
                answer = Some(other);
                break;
            }
        }
    }
    let outcome = answer.unwrap_or_else(|| Outcome::Failed("409 again and again".into()));
    let at = (st.clock)();
    let backoff = |failures: u32| {
        let d = cfg.retry_base.saturating_mul(1u32 << failures.min(16)).min(MAX_BACKOFF);
        Timestamp(at.0 + d.as_micros() as i64)
    };
    let failures = state.failures.saturating_add(1);
    let a = |status, size, detail: String, cosignature, failures: u32, retry_at| WitnessAnswer {
        name: w.name.clone(),
        size,
        status,
        detail,
        failures,
        retry_at,
        at,
        cosignature,
    };
    let answer = match outcome {
        Outcome::Cosigned(line) => a(WitnessStatus::Cosigned, newest.size, String::new(), Some(line), 0, at),
        Outcome::Conflict(known) => {
            let d = format!(
                "the witness has cosigned size {known}, beyond this log's newest {}: the log was cut short or forked",
                newest.size
            );
            a(WitnessStatus::Refused, old, d, None, failures, backoff(failures))
        }
        Outcome::Refused(why) => a(WitnessStatus::Refused, old, why, None, failures, backoff(failures)),
        Outcome::Misconfigured(why) => a(WitnessStatus::Misconfigured, old, why, None, failures, backoff(failures)),
        Outcome::Failed(why) => a(WitnessStatus::Unreachable, old, why, None, failures, backoff(failures)),
    };
    if answer.status == WitnessStatus::Refused && state.status != WitnessStatus::Refused {
        finding(st, w, newest.size, &answer.detail).await;
    }
    st.store.witness_answered(answer).await?;
    Ok(())
}

/// One `add-checkpoint` and what it answered.
enum Outcome {
    Cosigned(String),
    Conflict(u64),
    Refused(String),
    Misconfigured(String),
    Failed(String),
}

async fn attempt(
    st: &Services,
    client: &reqwest::Client,
    w: &PolicyWitness,
    newest: &SignedCheckpoint,
    old: u64,
) -> Outcome {
    if old > newest.size {
        return Outcome::Conflict(old);
    }
    let proof = if old == 0 || old == newest.size {
        Ok(vec![])
    } else {
        installation_nodes_for(&st.store, |rec| {
            let Ok(p) = merkle::consistency_proof(rec, old, newest.size);
            p
        })
        .await
    };
    let proof = match proof {
        Ok(p) => p,
        Err(e) => return Outcome::Failed(format!("no consistency proof from {old}: {e}")),
    };
    let body = AddCheckpoint { old, proof, checkpoint: newest.note.clone() }.to_text();
    let url = format!("{}/add-checkpoint", w.url.as_deref().unwrap_or_default());
    let (status, content_type, text) = match super::outbound::post_text(client, &url, body).await {
        Ok(a) => a,
        Err(e) => return Outcome::Failed(e),
    };
    let size_answer = content_type.starts_with("text/x.tlog.size");
    match status {
        200 => cosignature_of(w, newest, &text),
        409 if size_answer => match text.strip_suffix('\n').and_then(cosignature::decimal) {
            Some(n) => Outcome::Conflict(n),
            None => Outcome::Failed(format!("409 without a size: {:?}", text.trim())),
        },
        422 => Outcome::Refused(format!("422: {}", text.trim())),
        403 | 404 => Outcome::Misconfigured(format!("{status}: {}", text.trim())),
        _ => Outcome::Failed(format!("{status}: {}", text.trim())),
    }
}

/// The witness's cosignature among the answer's lines, checked against its key.
fn cosignature_of(w: &PolicyWitness, newest: &SignedCheckpoint, text: &str) -> Outcome {
    let lines = match cosignature::parse_response(text) {
        Ok(l) => l,
        Err(e) => return Outcome::Failed(format!("not a cosignature: {e}")),
    };
    for line in lines {
        let note = format!("{}{line}", newest.note);
        match cosignature::find(&note, &w.key_name, &w.key) {
            Ok(Some(_)) => return Outcome::Cosigned(line),
            Ok(None) => continue,
            Err(e) => return Outcome::Failed(format!("a bad cosignature: {e}")),
        }
    }
    Outcome::Failed("no cosignature by the key the policy names".into())
}

/// A witness refused the log: recorded as `witness:refused` (FAILED) in the system
/// organization, which the `witness_refused` alert rule sends.
async fn finding(st: &Services, w: &PolicyWitness, size: u64, why: &str) {
    tracing::error!(witness = %w.name, size, why, "a witness refused the installation log");
    let Ok(org) = st.system_org().await else { return };
    let record = super::selfaudit::Record::system(&org, "witness:refused")
        .resource("witness", &w.name, &w.key_name)
        .details(json!({"witness": w.name, "size": size, "answer": why}))
        .failed(why.to_string());
    super::selfaudit::record(st, record).await;
}

/// Refreshes the view from the store; records `witness:lagging` once per episode.
async fn refresh_view(st: &Services, cfg: &WitnessConfig, signed: u64) -> Result<(), WorkError> {
    let witnessed = newest_witnessed(&st.store, &cfg.policy).await?.map_or(0, |c| c.size);
    let states = st.store.witness_states().await?;
    let now = (st.clock)();
    let lagging_now = {
        let mut seen = st.witness_view.inner.lock().unwrap_or_else(|p| p.into_inner());
        seen.signed = signed;
        seen.witnessed = witnessed;
        seen.witnesses = states;
        if witnessed >= signed {
            seen.unwitnessed_since = None;
            seen.lagging_recorded = false;
            None
        } else {
            let since = *seen.unwitnessed_since.get_or_insert(now);
            let lag = Duration::from_micros((now.0 - since.0).max(0) as u64);
            (lag >= cfg.lagging_after && !seen.lagging_recorded).then(|| {
                seen.lagging_recorded = true;
                lag
            })
        }
    };
    if let Some(lag) = lagging_now {
        tracing::warn!(signed, witnessed, lag_secs = lag.as_secs(), "the installation log's witnessing lags");
        if let Ok(org) = st.system_org().await {
            let record = super::selfaudit::Record::system(&org, "witness:lagging")
                .resource("log", "_installation", "installation log")
                .details(json!({"newest_signed": signed, "newest_witnessed": witnessed, "lag_seconds": lag.as_secs()}))
                .failed(format!(
                    "the newest witnessed checkpoint ({witnessed}) lags the newest signed ({signed}) by {} s",
                    lag.as_secs()
                ));
            super::selfaudit::record(st, record).await;
        }
    }
    Ok(())
}
