//! Background exports: the registry of the export jobs this process runs, each
//! written to a file on its own task while its progress is counted. The API starts,
//! shows and serves them (`api/jobs.rs`), checking the caller's rights of now.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use serde_json::json;
use trail_export::Format;
use trail_store::Categories;
use uuid::Uuid;

use super::{
    export::{record_export, to_file, ExportRequest},
    Services, WorkError,
};

/// A background export.
pub struct Job {
    pub id: Uuid,
    /// The organization its rows come from (`None`: every organization).
    pub org: Option<String>,
    /// Every category its rows could hold: another caller must be allowed to export
    /// all of them to fetch it.
    pub reach: Categories,
    pub format: Format,
    /// Rows it was estimated to hold when it started.
    pub total: u64,
    pub path: PathBuf,
    pub file_name: String,
    done: Arc<AtomicU64>,
    state: Mutex<JobState>,
}

/// Where a job stands.
#[derive(Clone)]
pub enum JobState {
    Running,
    Done { rows: u64, bytes: u64 },
    Failed(Arc<WorkError>),
}

impl Job {
    /// Rows written so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    pub fn state(&self) -> JobState {
        self.state
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|_| JobState::Failed(Arc::new(WorkError::Internal("the job's state is poisoned".into()))))
    }
}

/// The jobs of this process, by id.
#[derive(Default)]
pub struct Jobs {
    map: Mutex<HashMap<Uuid, Arc<Job>>>,
}

impl Jobs {
    pub fn get(&self, id: Uuid) -> Option<Arc<Job>> {
        self.map.lock().ok().and_then(|m| m.get(&id).cloned())
    }
}

/// Starts a background export of `req`, estimated at `total` rows, and returns it.
pub async fn start(st: &Services, req: ExportRequest, total: u64) -> Result<Arc<Job>, WorkError> {
    if req.format == Format::Xlsx && total > u64::from(trail_export::XLSX_MAX_ROWS) {
        return Err(WorkError::field(
            "format",
            format!(
                "a worksheet holds at most {} events and {total} match: export them as CSV or JSON Lines",
                trail_export::XLSX_MAX_ROWS
            ),
        ));
    }
    let now = (st.clock)();
    let id = Uuid::now_v7();
    let path = st.config.exports.dir.join("jobs").join(format!("{id}.{}", req.format.ext()));
    let reach = match req.filter.category.as_slice() {
        [] => req.scope.categories.clone(),
        named => {
            req.scope.categories.intersect(&Categories::Only(named.iter().map(|c| c.to_ascii_lowercase()).collect()))
        }
    };
    let job = Arc::new(Job {
        id,
        org: req.scope.org.clone(),
        reach,
        format: req.format,
        total,
        done: Arc::default(),
        state: Mutex::new(JobState::Running),
        path: path.clone(),
        file_name: req.format.file_name(now),
    });
    if let Ok(mut m) = st.jobs.map.lock() {
        m.insert(id, job.clone());
    }
    let (st, running) = (st.clone(), job.clone());
    tokio::spawn(async move {
        let tmp = st.config.exports.tmp();
        let result = to_file(&st.store, &req, &running.path, &tmp, now, running.done.clone()).await;
        let state = match result {
            Ok(rows) => {
                record_export(&st, &req, rows, json!({"job": running.id})).await;
                let bytes = std::fs::metadata(&running.path).map(|m| m.len()).unwrap_or(0);
                JobState::Done { rows, bytes }
            }
            Err(e) => JobState::Failed(Arc::new(e)),
        };
        if let Ok(mut s) = running.state.lock() {
            *s = state;
        }
    });
    Ok(job)
}
