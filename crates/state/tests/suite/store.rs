//! Functional tests of the SQLite store through the `Store` trait.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::sync::Arc;

use fracta_state::{
    AgentFilter, AgentPatch, AgentRecord, AgentStatus, Mode, NewEvent, SCHEMA_VERSION, SqliteStore,
    StateConfig, Store, StoreError, TaskRecord, TransitionWrite, Usage, UsageRecord, open_store,
};
use jiff::Timestamp;
use serde_json::json;

fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let s = open_store(&StateConfig::sqlite(dir.path().join("nested/dir/state.db"))).unwrap();
    (dir, s)
}

fn agent(task: &str) -> AgentRecord {
    AgentRecord::new(task, "claude-main", "claude", Mode::Batch, "do the thing")
}

fn full_agent() -> AgentRecord {
    let mut a = agent("review");
    a.model = Some("sonnet".into());
    a.status = AgentStatus::Running;
    a.resume_token = Some("sess-123".into());
    a.workspace = Some("/tmp/ws".into());
    a.branch = Some("fracta/review-1".into());
    a.runtime_home = Some("/tmp/home".into());
    a.pid = Some(4242);
    a.process_start = Some("boot:123456".into());
    a.host = Some("laptop".into());
    a.exit_code = Some(-1);
    a.signal = Some(9);
    a.error = Some("oops".into());
    a.result = Some("done ✓".into());
    a.usage = Usage {
        input_tokens: 10,
        output_tokens: 20,
        cached_tokens: 30,
    };
    a.cost_usd = Some(0.125);
    a.started_at = Some(Timestamp::now());
    a.ended_at = Some(Timestamp::now());
    a.meta.turns = 2;
    a.meta.commit = Some("abc123".into());
    a.meta.extra.insert("k".into(), json!([1, 2, {"z": null}]));
    a
}

#[test]
fn agent_round_trip() {
    let (_d, s) = store();
    let a = full_agent();
    let stored = s.insert_agent(&a).unwrap();
    assert_eq!(stored, a);
    assert_eq!(s.get_agent(&a.id).unwrap(), a);

    let minimal = agent("t");
    s.insert_agent(&minimal).unwrap();
    assert_eq!(s.get_agent(&minimal.id).unwrap(), minimal);

    // serde boundary type: stable snake_case names
    let v = serde_json::to_value(&a).unwrap();
    assert_eq!(v["status"], "running");
    assert_eq!(v["mode"], "batch");
    assert_eq!(v["usage"]["cached_tokens"], 30);
    let back: AgentRecord = serde_json::from_value(v).unwrap();
    assert_eq!(back, a);
}

#[test]
fn insert_generates_ids_and_checks_parent_and_duplicates() {
    let (_d, s) = store();
    let mut a = agent("t");
    a.id = String::new();
    a.root_id = String::new();
    let stored = s.insert_agent(&a).unwrap();
    assert_eq!(stored.id.len(), 26);
    assert_eq!(stored.root_id, stored.id);

    let err = s.insert_agent(&stored).unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");

    let mut orphan = agent("t");
    orphan.parent_id = Some("NOPE".into());
    let err = s.insert_agent(&orphan).unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { ref id } if id == "NOPE"),
        "{err}"
    );
}

#[test]
fn an_agent_and_its_task_are_recorded_in_one_write_or_not_at_all() {
    let (_d, s) = store();
    let task = |instructions: &str| TaskRecord {
        name: "build".into(),
        description: None,
        source: "inline".into(),
        defaults: json!({}),
        instructions: instructions.into(),
        updated_at: Timestamp::now(),
    };
    let mut a = agent("build");
    a.id = String::new();
    a.root_id = String::new();
    let stored = s.insert_agent_of_task(&task("first"), &a).unwrap();
    assert_eq!(stored.root_id, stored.id);
    assert_eq!(s.get_agent(&stored.id).unwrap().task, "build");
    assert_eq!(s.get_task("build").unwrap().unwrap().instructions, "first");

    // An agent that cannot be inserted (its id is taken) leaves the task as it was.
    let err = s
        .insert_agent_of_task(&task("second"), &stored)
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");
    assert_eq!(s.get_task("build").unwrap().unwrap().instructions, "first");
}

#[test]
fn task_round_trip() {
    let (_d, s) = store();
    assert!(s.get_task("build").unwrap().is_none());
    let mut t = TaskRecord {
        name: "build".into(),
        description: Some("Build it".into()),
        source: ".fracta/tasks/build.md".into(),
        defaults: json!({"runtime": "codex", "tier": "heavy", "mode": "batch"}),
        instructions: "Build\nthe thing.".into(),
        updated_at: Timestamp::now(),
    };
    s.upsert_task(&t).unwrap();
    assert_eq!(s.get_task("build").unwrap().unwrap(), t);
    t.description = None;
    t.instructions = "changed".into();
    s.upsert_task(&t).unwrap();
    assert_eq!(s.get_task("build").unwrap().unwrap(), t);
    let inline = TaskRecord {
        name: "adhoc".into(),
        description: None,
        source: "inline".into(),
        defaults: json!({}),
        instructions: "hi".into(),
        updated_at: Timestamp::now(),
    };
    s.upsert_task(&inline).unwrap();
    let names: Vec<_> = s
        .list_tasks()
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["adhoc", "build"]);
}

#[test]
fn prefix_lookup() {
    let (_d, s) = store();
    let mut a = agent("t");
    a.id = "01ABCDEF".into();
    a.root_id = a.id.clone();
    let mut b = agent("t");
    b.id = "01ABCXYZ".into();
    b.root_id = b.id.clone();
    let mut c = agent("t");
    c.id = "01ABC".into();
    c.root_id = c.id.clone();
    for x in [&a, &b, &c] {
        s.insert_agent(x).unwrap();
    }
    assert_eq!(s.get_agent("01ABCD").unwrap().id, a.id);
    assert_eq!(s.get_agent("01abcx").unwrap().id, b.id, "case-insensitive");
    // an exact id wins even though it is also a prefix of others
    assert_eq!(s.get_agent("01ABC").unwrap().id, c.id);
    match s.get_agent("01AB").unwrap_err() {
        StoreError::Ambiguous { prefix, matches } => {
            assert_eq!(prefix, "01AB");
            assert_eq!(matches, ["01ABC", "01ABCDEF", "01ABCXYZ"]);
        }
        e => panic!("unexpected {e}"),
    }
    let err = s.get_agent("ZZZ").unwrap_err();
    assert!(matches!(err, StoreError::NotFound { ref id } if id == "ZZZ"));
    assert!(err.to_string().contains("ZZZ"));
    // LIKE wildcards are literal
    assert!(s.get_agent("01_B").unwrap_err().is_not_found());
    assert!(s.get_agent("%").unwrap_err().is_not_found());
    assert!(s.get_agent("").unwrap_err().is_not_found());
}

/// The short id the live view shows (the id's last six characters) and any unique suffix
/// name an agent too, when no prefix does; `@last` names the newest.
#[test]
fn suffix_and_last_lookup() {
    let (_d, s) = store();
    let mk = |id: &str, at: i64| {
        let mut a = agent("t");
        a.id = id.into();
        a.root_id = a.id.clone();
        a.created_at = Timestamp::from_second(at).unwrap();
        s.insert_agent(&a).unwrap()
    };
    assert!(
        s.get_agent("@last").unwrap_err().is_not_found(),
        "no agent yet"
    );
    mk("01M8VG548Q1EJD9XYKY889Q1Y2", 100);
    mk("01M8VG548Q1EJD9XYKY889Q194", 300);
    mk("01M8VG548Q1EJD9XYKY889ZZ94", 200);
    assert_eq!(
        s.get_agent("889Q1Y2").unwrap().id,
        "01M8VG548Q1EJD9XYKY889Q1Y2"
    );
    assert_eq!(
        s.get_agent("q194").unwrap().id,
        "01M8VG548Q1EJD9XYKY889Q194",
        "case-insensitive"
    );
    // A prefix still wins; an ambiguous suffix says which agents it could be.
    assert!(matches!(
        s.get_agent("01M8").unwrap_err(),
        StoreError::Ambiguous { .. }
    ));
    match s.get_agent("94").unwrap_err() {
        StoreError::Ambiguous { matches, .. } => assert_eq!(
            matches,
            ["01M8VG548Q1EJD9XYKY889Q194", "01M8VG548Q1EJD9XYKY889ZZ94"]
        ),
        e => panic!("unexpected {e}"),
    }
    assert!(s.get_agent("XYZ").unwrap_err().is_not_found());
    assert_eq!(
        s.get_agent("@last").unwrap().id,
        "01M8VG548Q1EJD9XYKY889Q194"
    );
}

#[test]
fn status_cas() {
    let (_d, s) = store();
    let a = s.insert_agent(&agent("t")).unwrap();
    let ok = s
        .transition(
            &a.id,
            &[AgentStatus::Queued],
            AgentStatus::Starting,
            &AgentPatch::default(),
        )
        .unwrap();
    assert!(ok);
    let patch = AgentPatch {
        pid: Some(Some(77)),
        ..Default::default()
    };
    assert!(
        s.transition(
            &a.id,
            &[AgentStatus::Starting],
            AgentStatus::Running,
            &patch
        )
        .unwrap()
    );
    let r = s.get_agent(&a.id).unwrap();
    assert_eq!(r.status, AgentStatus::Running);
    assert_eq!(r.pid, Some(77));
    assert!(r.started_at.is_some());
    assert!(r.ended_at.is_none());

    // wrong `from`: no change
    assert!(
        !s.transition(
            &a.id,
            &[AgentStatus::Queued],
            AgentStatus::Failed,
            &AgentPatch::default()
        )
        .unwrap()
    );
    assert_eq!(s.get_agent(&a.id).unwrap().status, AgentStatus::Running);

    let fin = AgentPatch {
        exit_code: Some(Some(0)),
        result: Some(Some("ok".into())),
        pid: Some(None),
        ..Default::default()
    };
    assert!(
        s.transition(&a.id, &AgentStatus::ACTIVE, AgentStatus::Succeeded, &fin)
            .unwrap()
    );
    // the second finisher loses
    assert!(
        !s.transition(&a.id, &AgentStatus::ACTIVE, AgentStatus::Failed, &fin)
            .unwrap()
    );
    let r = s.get_agent(&a.id).unwrap();
    assert_eq!(r.status, AgentStatus::Succeeded);
    assert!(r.status.is_terminal());
    assert_eq!(r.pid, None);
    assert_eq!(r.exit_code, Some(0));
    assert!(r.ended_at.is_some());

    // resume clears ended_at, keeps started_at
    assert!(
        s.transition(
            &a.id,
            &[AgentStatus::Succeeded],
            AgentStatus::Starting,
            &AgentPatch::default()
        )
        .unwrap()
    );
    let r2 = s.get_agent(&a.id).unwrap();
    assert!(r2.ended_at.is_none());
    assert_eq!(r2.started_at, r.started_at);

    assert!(
        s.transition("missing", &[], AgentStatus::Lost, &AgentPatch::default())
            .unwrap_err()
            .is_not_found()
    );
}

#[test]
fn update_and_modify() {
    let (_d, s) = store();
    let a = s.insert_agent(&full_agent()).unwrap();
    let u = s
        .update_agent(
            &a.id,
            &AgentPatch {
                model: Some(None),
                resume_token: Some(Some("new".into())),
                meta: Some(fracta_state::AgentMeta {
                    turns: 1,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(u.model, None);
    assert_eq!(u.resume_token.as_deref(), Some("new"));
    assert_eq!(u.workspace, a.workspace, "untouched");
    assert!(u.updated_at >= a.updated_at);
    assert_eq!(s.get_agent(&a.id).unwrap(), u);

    let m = s
        .modify_agent(&a.id, &mut |r| {
            r.id = "HIJACK".into();
            r.host = Some("other".into());
        })
        .unwrap();
    assert_eq!(m.id, a.id, "id cannot change");
    assert_eq!(s.get_agent(&a.id).unwrap().host.as_deref(), Some("other"));
    assert!(
        s.update_agent("nope", &AgentPatch::default())
            .unwrap_err()
            .is_not_found()
    );
}

#[test]
fn events_seq_and_paging() {
    let (_d, s) = store();
    let a = s.insert_agent(&agent("t")).unwrap();
    assert_eq!(s.append_events(&a.id, &[]).unwrap(), Vec::<u64>::new());
    let batch: Vec<_> = (0..5)
        .map(|n| NewEvent::new("message", json!({"n": n})).with_raw(format!("{{\"n\":{n}}}")))
        .collect();
    assert_eq!(s.append_events(&a.id, &batch).unwrap(), [1, 2, 3, 4, 5]);
    let at = Timestamp::from_second(1_700_000_000).unwrap();
    let unparsed = NewEvent {
        kind: "raw".into(),
        payload: json!(null),
        raw: Some("garbage line".into()),
        parsed: false,
        at: Some(at),
    };
    assert_eq!(
        s.append_events(&a.id, std::slice::from_ref(&unparsed))
            .unwrap(),
        [6]
    );
    assert_eq!(s.event_count(&a.id).unwrap(), 6);

    let all = s.events(&a.id, 0, None).unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(all[2].payload, json!({"n": 2}));
    assert_eq!(all[2].raw.as_deref(), Some("{\"n\":2}"));
    assert!(all[2].parsed);
    let last = &all[5];
    assert_eq!(last.at, at);
    assert_eq!(last.kind, "raw");
    assert!(!last.parsed);
    assert_eq!(last.agent_id, a.id);

    let page = s.events(&a.id, 2, Some(2)).unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
    assert!(s.events(&a.id, 6, None).unwrap().is_empty());

    // seqs are per agent
    let b = s.insert_agent(&agent("t")).unwrap();
    assert_eq!(s.append_events(&b.id, &batch[..2]).unwrap(), [1, 2]);
    assert!(
        s.append_events("missing", &batch)
            .unwrap_err()
            .is_not_found()
    );
}

#[test]
fn usage_accumulates() {
    let (_d, s) = store();
    let a = s.insert_agent(&agent("t")).unwrap();
    let u1 = UsageRecord {
        agent_id: a.id.clone(),
        turn: 1,
        model: Some("gpt-5".into()),
        input_tokens: 100,
        output_tokens: 50,
        cached_tokens: 10,
        cost_usd: Some(0.25),
        at: Timestamp::now(),
    };
    let u2 = UsageRecord {
        turn: 2,
        model: None,
        input_tokens: 1,
        output_tokens: 2,
        cached_tokens: 3,
        cost_usd: None,
        ..u1.clone()
    };
    let u3 = UsageRecord {
        turn: 3,
        cost_usd: Some(0.5),
        ..u2.clone()
    };
    for u in [&u1, &u2, &u3] {
        s.record_usage(u).unwrap();
    }
    let r = s.get_agent(&a.id).unwrap();
    assert_eq!(
        r.usage,
        Usage {
            input_tokens: 102,
            output_tokens: 54,
            cached_tokens: 16
        }
    );
    assert_eq!(r.cost_usd, Some(0.75));
    assert_eq!(s.usage(&a.id).unwrap(), vec![u1.clone(), u2, u3]);
    let mut bad = u1;
    bad.agent_id = "missing".into();
    assert!(s.record_usage(&bad).unwrap_err().is_not_found());
}

#[test]
fn list_children_delete() {
    let (_d, s) = store();
    let mut root = agent("root");
    root.created_at = Timestamp::from_second(500).unwrap();
    let root = s.insert_agent(&root).unwrap();
    let mut c1 = agent("child").with_parent(&root);
    c1.created_at = Timestamp::from_second(1_000).unwrap();
    let c1 = s.insert_agent(&c1).unwrap();
    let mut c2 = agent("child").with_parent(&root);
    c2.created_at = Timestamp::from_second(2_000).unwrap();
    c2.status = AgentStatus::Running;
    let c2 = s.insert_agent(&c2).unwrap();
    let mut g = agent("grand").with_parent(&c1);
    g.created_at = Timestamp::from_second(3_000).unwrap();
    let g = s.insert_agent(&g).unwrap();
    assert_eq!(g.root_id, root.id);
    assert_eq!(g.depth, 2);
    let mut done = agent("other");
    done.status = AgentStatus::Failed;
    let done = s.insert_agent(&done).unwrap();

    let kids: Vec<_> = s
        .children(&root.id)
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(kids, [c1.id.clone(), c2.id.clone()]);
    assert!(s.has_children(&root.id).unwrap());
    assert!(s.has_children(&c1.id).unwrap());
    assert!(!s.has_children(&c2.id).unwrap());
    assert!(!s.has_children(&g.id).unwrap());

    let ids = |f: AgentFilter| -> Vec<String> {
        s.list_agents(&f)
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect()
    };
    // running first, then queued (newest first), then the rest
    assert_eq!(
        ids(AgentFilter::default()),
        [
            c2.id.clone(),
            g.id.clone(),
            c1.id.clone(),
            root.id.clone(),
            done.id.clone()
        ]
    );
    assert_eq!(
        ids(AgentFilter {
            root_id: Some(root.id.clone()),
            ..Default::default()
        }),
        [c2.id.clone(), g.id.clone(), c1.id.clone(), root.id.clone()]
    );
    assert_eq!(
        ids(AgentFilter {
            parent_id: Some(root.id.clone()),
            ..Default::default()
        }),
        [c2.id.clone(), c1.id.clone()]
    );
    assert_eq!(
        ids(AgentFilter {
            statuses: vec![AgentStatus::Failed, AgentStatus::Running],
            ..Default::default()
        }),
        [c2.id.clone(), done.id.clone()]
    );
    assert_eq!(
        ids(AgentFilter {
            roots_only: true,
            limit: Some(1),
            ..Default::default()
        }),
        [root.id.as_str()]
    );
    assert_eq!(
        ids(AgentFilter {
            task: Some("grand".into()),
            ..Default::default()
        }),
        [g.id.as_str()]
    );

    // delete cascades events and usage
    s.append_events(&c1.id, &[NewEvent::new("x", json!(1))])
        .unwrap();
    s.record_usage(&UsageRecord {
        agent_id: c1.id.clone(),
        turn: 1,
        model: None,
        input_tokens: 1,
        output_tokens: 1,
        cached_tokens: 0,
        cost_usd: None,
        at: Timestamp::now(),
    })
    .unwrap();
    s.delete_agent(&c1.id).unwrap();
    assert!(s.get_agent(&c1.id).unwrap_err().is_not_found());
    assert_eq!(s.event_count(&c1.id).unwrap(), 0);
    assert!(s.usage(&c1.id).unwrap().is_empty());
    assert!(s.delete_agent(&c1.id).unwrap_err().is_not_found());
    // grandchild survives, still naming its parent
    assert_eq!(s.get_agent(&g.id).unwrap().parent_id, Some(c1.id.clone()));
}

#[test]
fn migrates_empty_file_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    std::fs::write(&path, b"").unwrap();
    let s = SqliteStore::open(&path).unwrap();
    let a = s.insert_agent(&agent("t")).unwrap();
    drop(s);

    let conn = rusqlite::Connection::open(&path).unwrap();
    let v: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(conn);

    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.get_agent(&a.id).unwrap(), a);
}

/// A database written by an earlier Fracta keeps an untyped `meta` bag with these keys (and
/// `"tier": null`); it reads into the typed fields, and a key this version does not know is
/// kept and written back.
#[test]
fn an_untyped_meta_from_an_earlier_version_reads_into_typed_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let s = SqliteStore::open(&path).unwrap();
    let a = s.insert_agent(&agent("t")).unwrap();
    drop(s);
    let old = json!({
        "tier": null, "turns": 2, "last_turn_ok": true, "commit": "abc123",
        "budgets": {"max_depth": 1, "max_children": 2, "max_running": 4, "wall_clock_secs": 60},
        "supervisor": {"pid": 4242, "identity": "4242:99"},
        "kubernetes": {"namespace": "agents", "job": "fracta-x"},
        "command": "claude -p hi", "stderr_tail": "oops", "from_the_future": [1]
    });
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE agents SET meta = ?1 WHERE id = ?2",
        (old.to_string(), &a.id),
    )
    .unwrap();
    drop(conn);
    let s = SqliteStore::open(&path).unwrap();
    let m = s.get_agent(&a.id).unwrap().meta;
    assert_eq!(m.tier, None);
    assert_eq!(m.turns, 2);
    assert_eq!(m.last_turn_ok, Some(true));
    assert_eq!(m.commit.as_deref(), Some("abc123"));
    assert_eq!(m.budgets.unwrap().max_children, Some(2));
    assert_eq!(m.budgets.unwrap().wall_clock_secs, Some(60));
    assert_eq!(m.supervisor.as_ref().unwrap().pid, 4242);
    assert_eq!(
        m.kubernetes.as_ref().unwrap().job.as_deref(),
        Some("fracta-x")
    );
    assert_eq!(m.command.as_deref(), Some("claude -p hi"));
    assert_eq!(m.stderr_tail.as_deref(), Some("oops"));
    assert_eq!(m.extra["from_the_future"], json!([1]));
    // Written back, the unknown key survives.
    let u = s.modify_agent(&a.id, &mut |a| a.meta.turns += 1).unwrap();
    assert_eq!(u.meta.turns, 3);
    assert_eq!(
        s.get_agent(&a.id).unwrap().meta.extra["from_the_future"],
        json!([1])
    );
}

#[test]
fn refuses_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 5)
        .unwrap();
    drop(conn);
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooNew { found, supported }
        if found == SCHEMA_VERSION + 5 && supported == SCHEMA_VERSION));
    assert_eq!(
        err.to_string(),
        format!(
            "state database schema version {} is newer than this fracta supports ({}); upgrade fracta",
            SCHEMA_VERSION + 5,
            SCHEMA_VERSION
        )
    );
    // not silently downgraded
    let conn = rusqlite::Connection::open(&path).unwrap();
    let v: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION + 5);
}

#[test]
fn sqlite_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-db");
    std::fs::write(
        &path,
        b"this is definitely not a sqlite database file at all....",
    )
    .unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Sqlite { .. }), "{err}");
    assert!(err.to_string().contains("not-a-db"), "{err}");
}

#[test]
fn in_memory_store_works() {
    let s = SqliteStore::open_in_memory().unwrap();
    let a = s.insert_agent(&agent("t")).unwrap();
    assert_eq!(
        s.append_events(&a.id, &[NewEvent::new("k", json!({}))])
            .unwrap(),
        [1]
    );
}

#[test]
fn status_and_mode_names() {
    for st in AgentStatus::ALL {
        assert_eq!(st.as_str().parse::<AgentStatus>().unwrap(), st);
        assert_eq!(serde_json::to_value(st).unwrap(), st.as_str());
    }
    assert!("bogus".parse::<AgentStatus>().is_err());
    assert_eq!("stream".parse::<Mode>().unwrap(), Mode::Stream);
    assert!(!AgentStatus::Running.is_terminal());
    assert!(AgentStatus::Lost.is_terminal());
}

#[test]
fn closing_leaves_the_wal_for_the_next_command_and_the_auto_checkpoint_bounds_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let wal_len = || {
        std::fs::metadata(dir.path().join("state.db-wal"))
            .unwrap()
            .len()
    };
    let a = agent("kept");
    for round in 0..2 {
        let s = open_store(&StateConfig::sqlite(db.clone())).unwrap();
        if round == 0 {
            s.insert_agent(&a).unwrap();
        } else {
            // Reopening finds the row in the kept WAL, and writes after it.
            assert_eq!(s.get_agent(&a.id).unwrap().task, "kept");
            s.insert_agent(&agent("second")).unwrap();
        }
        drop(s);
        // No checkpoint at close (it would cost two fsyncs per command): the WAL keeps the
        // rows, and both files stay for the next command.
        assert!(wal_len() > 0, "round {round}");
        assert!(dir.path().join("state.db-shm").exists());
    }
    // Many commands' writes: the automatic checkpoint moves them into state.db, so the WAL
    // does not grow with them (256 pages of 4 KiB, plus one transaction's frames).
    for round in 0..20 {
        let s = open_store(&StateConfig::sqlite(db.clone())).unwrap();
        for i in 0..25 {
            s.insert_agent(&agent(&format!("r{round}-{i}"))).unwrap();
        }
    }
    assert!(wal_len() <= 2 << 20, "WAL of {} bytes", wal_len());
    let s = open_store(&StateConfig::sqlite(db.clone())).unwrap();
    assert_eq!(s.get_agent(&a.id).unwrap().task, "kept");
    assert_eq!(
        s.list_agents(&AgentFilter::default()).unwrap().len(),
        2 + 20 * 25
    );
}

/// A run's end is one write: the usage, the move (or, for an agent already stopped, the patch
/// without a move) and the events made from the record as it then is; an agent that does not
/// exist changes nothing.
#[test]
fn a_run_ends_in_one_write() {
    let (_d, s) = store();
    let mut a = agent("end");
    a.status = AgentStatus::Running;
    let a = s.insert_agent(&a).unwrap();
    let usage = UsageRecord {
        agent_id: a.id.clone(),
        turn: 1,
        model: Some("m".into()),
        input_tokens: 5,
        output_tokens: 7,
        cached_tokens: 0,
        cost_usd: Some(0.5),
        at: Timestamp::now(),
    };
    let patch = AgentPatch {
        exit_code: Some(Some(0)),
        error: Some(Some("why".into())),
        ..AgentPatch::default()
    };
    let otherwise = AgentPatch {
        exit_code: Some(Some(0)),
        ..AgentPatch::default()
    };
    let end = TransitionWrite {
        usage: Some(&usage),
        from: &AgentStatus::ACTIVE,
        to: AgentStatus::Failed,
        patch: &patch,
        otherwise: Some(&otherwise),
    };
    // What the events were made of (moved, status), the record and the events' seqs.
    let run = |id: &str, end: &TransitionWrite<'_>| {
        let mut seen = Vec::new();
        let (rec, seqs) = s
            .transition_with_events(id, end, &mut |moved, rec| {
                seen.push((moved, rec.status));
                vec![NewEvent::new(
                    "status",
                    json!({"status": rec.status.as_str()}),
                )]
            })
            .unwrap();
        (seen, rec, seqs)
    };
    let (seen, rec, seqs) = run(&a.id, &end);
    assert_eq!(seen, [(true, AgentStatus::Failed)]);
    assert_eq!(
        (rec.status, rec.error.as_deref()),
        (AgentStatus::Failed, Some("why"))
    );
    assert!(rec.ended_at.is_some());
    assert_eq!(rec.usage.output_tokens, 7);
    assert_eq!(rec.cost_usd, Some(0.5));
    assert_eq!(s.usage(&a.id).unwrap(), vec![usage.clone()]);
    assert_eq!(seqs, [1]);
    assert_eq!(s.get_agent(&a.id).unwrap(), rec);

    // Stopped before its run ended: it stays stopped, with its own error.
    let mut b = agent("stopped");
    b.status = AgentStatus::Stopped;
    b.error = Some("stopped by you".into());
    let b = s.insert_agent(&b).unwrap();
    let end = TransitionWrite { usage: None, ..end };
    let (seen, rec, seqs) = run(&b.id, &end);
    assert_eq!(seen, [(false, AgentStatus::Stopped)]);
    assert_eq!(
        (rec.status, rec.error.as_deref(), rec.exit_code),
        (AgentStatus::Stopped, Some("stopped by you"), Some(0))
    );
    assert_eq!(seqs, [1]);
    assert!(s.usage(&b.id).unwrap().is_empty());

    let missing = s.transition_with_events("01MISSING", &end, &mut |_, _| Vec::new());
    assert!(missing.unwrap_err().is_not_found());
}
