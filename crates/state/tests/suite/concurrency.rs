//! Several writers (threads and processes), each with its own connection,
//! sharing one database file.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};

use fracta_state::{
    AgentPatch, AgentRecord, AgentStatus, Mode, NewEvent, SqliteStore, Store, UsageRecord,
};
use jiff::Timestamp;
use serde_json::json;

const ROLE_ENV: &str = "FRACTA_STATE_TEST_ROLE";
const PATH_ENV: &str = "FRACTA_STATE_TEST_DB";
const AGENT_ENV: &str = "FRACTA_STATE_TEST_AGENT";
const WORKER_ENV: &str = "FRACTA_STATE_TEST_WORKER";

const EVENTS_PER_WRITER: usize = 300;
const INCREMENTS_PER_WRITER: u64 = 40;

fn agent(task: &str) -> AgentRecord {
    AgentRecord::new(task, "rt", "codex", Mode::Stream, "prompt")
}

/// The work every writer (thread or process) does against the shared agent:
/// appends events (singly and in batches), read-modify-write increments of a
/// counter in `meta`, usage records, a CAS race, and its own agent's life.
fn writer(s: &dyn Store, shared: &str, worker: usize) -> Vec<u64> {
    let own = s.insert_agent(&agent(&format!("worker-{worker}"))).unwrap();
    let mut seqs = Vec::new();
    let mut written = 0;
    let mut round = 0u64;
    while written < EVENTS_PER_WRITER {
        let n = (round as usize % 4 + 1).min(EVENTS_PER_WRITER - written);
        let batch: Vec<_> = (0..n)
            .map(|k| {
                NewEvent::new("message", json!({"worker": worker, "i": written + k}))
                    .with_raw(format!("w{worker} line {}", written + k))
            })
            .collect();
        seqs.extend(s.append_events(shared, &batch).unwrap());
        written += n;
        if round < INCREMENTS_PER_WRITER {
            s.modify_agent(shared, &mut |a| {
                a.meta.turns += 1;
            })
            .unwrap();
            s.record_usage(&UsageRecord {
                agent_id: shared.to_owned(),
                turn: round as u32,
                model: None,
                input_tokens: 1,
                output_tokens: 2,
                cached_tokens: 0,
                cost_usd: None,
                at: Timestamp::now(),
            })
            .unwrap();
            s.update_agent(
                &own.id,
                &AgentPatch {
                    pid: Some(Some(round as i64)),
                    ..Default::default()
                },
            )
            .unwrap();
        }
        round += 1;
    }
    assert!(
        s.transition(
            &own.id,
            &[AgentStatus::Queued],
            AgentStatus::Succeeded,
            &AgentPatch::default()
        )
        .unwrap()
    );
    seqs
}

fn verify(s: &dyn Store, shared: &str, writers: usize) {
    let total = (writers * EVENTS_PER_WRITER) as u64;
    assert_eq!(s.event_count(shared).unwrap(), total);
    let events = s.events(shared, 0, None).unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>());
    // each writer's events are in its own order
    for w in 0..writers {
        let mine: Vec<u64> = events
            .iter()
            .filter(|e| e.payload["worker"] == json!(w))
            .map(|e| e.payload["i"].as_u64().unwrap())
            .collect();
        assert_eq!(mine, (0..EVENTS_PER_WRITER as u64).collect::<Vec<_>>());
    }
    let a = s.get_agent(shared).unwrap();
    let incs = writers as u64 * INCREMENTS_PER_WRITER;
    assert_eq!(u64::from(a.meta.turns), incs, "lost update");
    assert_eq!(a.usage.input_tokens, incs);
    assert_eq!(a.usage.output_tokens, 2 * incs);
    assert_eq!(s.usage(shared).unwrap().len() as u64, incs);
    let done = s
        .list_agents(&fracta_state::AgentFilter {
            statuses: vec![AgentStatus::Succeeded],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(done.iter().filter(|a| a.id != shared).count(), writers);
}

/// Every racer tries to finish the shared agent; exactly one may win.
fn race_finish(s: &dyn Store, shared: &str, worker: usize) -> bool {
    s.transition(
        shared,
        &AgentStatus::ACTIVE,
        AgentStatus::Succeeded,
        &AgentPatch {
            result: Some(Some(format!("won by {worker}"))),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn threads_with_own_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let setup = SqliteStore::open(&path).unwrap();
    let shared = setup.insert_agent(&agent("shared")).unwrap().id;

    let writers = 8;
    let barrier = Arc::new(Barrier::new(writers));
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let (path, shared, barrier) = (path.clone(), shared.clone(), barrier.clone());
            std::thread::spawn(move || {
                let s = SqliteStore::open(&path).unwrap();
                barrier.wait();
                let seqs = writer(&s, &shared, w);
                barrier.wait();
                (seqs, race_finish(&s, &shared, w))
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut wins = 0;
    for h in handles {
        let (seqs, won) = h.join().unwrap();
        // seqs returned to one writer are increasing
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
        all.extend(seqs);
        wins += usize::from(won);
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=(writers * EVENTS_PER_WRITER) as u64).collect::<Vec<_>>()
    );
    assert_eq!(wins, 1, "exactly one finisher wins the CAS");
    verify(&setup, &shared, writers);
    assert_eq!(
        setup.get_agent(&shared).unwrap().status,
        AgentStatus::Succeeded
    );
}

fn spawn_role(
    role: &str,
    test: &str,
    path: &Path,
    agent: &str,
    worker: usize,
) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, role)
        .env(PATH_ENV, path)
        .env(AGENT_ENV, agent)
        .env(WORKER_ENV, worker.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_all(children: Vec<std::process::Child>) {
    for mut c in children {
        let status = c.wait().unwrap();
        assert!(status.success(), "child process failed: {status}");
    }
}

/// Parent: spawns child processes of this test binary. Child (env var
/// set): plays the selected role and exits.
#[test]
fn multi_process_writers() {
    const TEST: &str = "suite::concurrency::multi_process_writers";
    if let Ok(role) = std::env::var(ROLE_ENV) {
        let path = PathBuf::from(std::env::var(PATH_ENV).unwrap());
        let shared = std::env::var(AGENT_ENV).unwrap();
        let worker: usize = std::env::var(WORKER_ENV).unwrap().parse().unwrap();
        match role.as_str() {
            // concurrent first open (creates + migrates the fresh file)
            "open" => {
                let s = SqliteStore::open(&path).unwrap();
                s.insert_agent(&agent(&format!("opener-{worker}"))).unwrap();
            }
            "write" => {
                let s = SqliteStore::open(&path).unwrap();
                writer(&s, &shared, worker);
            }
            "race" => {
                let s = SqliteStore::open(&path).unwrap();
                if race_finish(&s, &shared, worker) {
                    // report the win through the store itself
                    s.append_events(&shared, &[NewEvent::new("winner", json!(worker))])
                        .unwrap();
                }
            }
            other => panic!("unknown role {other}"),
        }
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/state.db");
    let procs = 4;

    // Phase 1: several processes open a brand-new database at once.
    wait_all(
        (0..procs)
            .map(|w| spawn_role("open", TEST, &path, "", w))
            .collect(),
    );
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.list_agents(&Default::default()).unwrap().len(), procs);
    let shared = s.insert_agent(&agent("shared")).unwrap().id;
    drop(s);

    // Phase 2: concurrent writers.
    wait_all(
        (0..procs)
            .map(|w| spawn_role("write", TEST, &path, &shared, w))
            .collect(),
    );
    let s = SqliteStore::open(&path).unwrap();
    verify(&s, &shared, procs);
    let before = s.event_count(&shared).unwrap();

    // Phase 3: racing finishers; exactly one wins.
    wait_all(
        (0..procs)
            .map(|w| spawn_role("race", TEST, &path, &shared, w))
            .collect(),
    );
    let winners = s.events(&shared, before, None).unwrap();
    assert_eq!(winners.len(), 1, "exactly one process wins the CAS");
    let a = s.get_agent(&shared).unwrap();
    assert_eq!(a.status, AgentStatus::Succeeded);
    assert_eq!(
        a.result,
        Some(format!("won by {}", winners[0].payload.as_u64().unwrap()))
    );
}
