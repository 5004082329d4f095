//! Arbitrary strings and JSON payloads round-trip through the store.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use fracta_state::{AgentRecord, Mode, NewEvent, SqliteStore, Store, TaskRecord};
use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::Value;

/// JSON values without floats (serde_json's default float parsing is not
/// guaranteed to round-trip every f64 bit-exactly; that is serde_json's
/// concern, not the store's).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn strings_and_json_round_trip(
        task in any::<String>(),
        prompt in any::<String>(),
        kind in any::<String>(),
        raw in proptest::option::of(any::<String>()),
        payload in json_value(),
        meta in json_value(),
        parsed in any::<bool>(),
        at_s in 0i64..4_000_000_000,
        at_ns in 0i32..1_000_000_000,
        cost in proptest::option::of(-1.0e12f64..1.0e12),
    ) {
        let s = SqliteStore::open_in_memory().unwrap();
        let mut a = AgentRecord::new(task.clone(), "rt", "claude", Mode::Batch, prompt.clone());
        // Keys the store does not know are kept as they were.
        a.meta.extra.insert("x-unknown".into(), meta);
        a.error = Some(prompt.clone());
        a.cost_usd = cost;
        a.created_at = Timestamp::new(at_s, at_ns).unwrap();
        let a = s.insert_agent(&a).unwrap();
        prop_assert_eq!(s.get_agent(&a.id).unwrap(), a.clone());

        let at = Timestamp::new(at_s, at_ns).unwrap();
        let ev = NewEvent { kind: kind.clone(), payload: payload.clone(), raw: raw.clone(), parsed, at: Some(at) };
        prop_assert_eq!(s.append_events(&a.id, &[ev]).unwrap(), vec![1]);
        let got = s.events(&a.id, 0, None).unwrap();
        prop_assert_eq!(got.len(), 1);
        prop_assert_eq!(&got[0].kind, &kind);
        prop_assert_eq!(&got[0].payload, &payload);
        prop_assert_eq!(&got[0].raw, &raw);
        prop_assert_eq!(got[0].parsed, parsed);
        prop_assert_eq!(got[0].at, at);

        let t = TaskRecord {
            name: task.clone(),
            description: raw,
            source: prompt,
            defaults: payload,
            instructions: kind,
            updated_at: at,
        };
        s.upsert_task(&t).unwrap();
        prop_assert_eq!(s.get_task(&task).unwrap(), Some(t));
    }
}
