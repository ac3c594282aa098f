use super::*;
use common::scim::patch::PatchOp;
use std::collections::HashSet;

fn ops(list: Value) -> Vec<PatchOp> {
    patch::parse_request(
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": list}),
        &schema::GROUP,
    )
    .expect("a valid PATCH")
}

fn ids(n: u128) -> Vec<Uuid> {
    (1..=n).map(Uuid::from_u128).collect()
}

/// The member list `ops` makes of `members`, as the worker computes it.
fn patched(members: &[Uuid], ops: &[PatchOp]) -> Result<Vec<Uuid>, ScimError> {
    let list: Vec<Value> = members
        .iter()
        .map(|m| json!({"value": m.to_string()}))
        .collect();
    let mut resource = Map::new();
    resource.insert("displayName".into(), json!("G"));
    resource.insert("members".into(), Value::Array(list));
    patch::apply(&mut resource, &schema::GROUP, ops)?;
    GroupInput::from_json(Value::Object(resource)).map(|g| g.members)
}

#[test]
fn okta_and_entra_member_changes_name_their_members() {
    let (a, b) = (Uuid::from_u128(7), Uuid::from_u128(8));
    let add = ops(
        json!([{"op": "add", "path": "members", "value": [{"value": a.to_string(), "display": "A"}, {"value": a.to_string()}]}]),
    );
    assert_eq!(named_members(&add), Some(vec![a]), "deduplicated");
    let remove = ops(json!([{"op": "remove", "path": format!("members[value eq \"{b}\"]")}]));
    assert_eq!(named_members(&remove), Some(vec![b]));
    let entra = ops(
        json!([{"op": "Remove", "path": "members", "value": [{"value": a.to_string()}, {"value": b.to_string()}]}]),
    );
    assert_eq!(named_members(&entra), Some(vec![a, b]));
    let rename = ops(json!([{"op": "replace", "value": {"id": "x", "displayName": "New"}}]));
    assert_eq!(named_members(&rename), Some(vec![]));
    let not_ids = ops(json!([{"op": "add", "path": "members", "value": [{"value": "nope"}]}]));
    assert_eq!(named_members(&not_ids), Some(vec![]));
}

#[test]
fn changes_that_may_touch_unnamed_members_need_the_whole_list() {
    let a = Uuid::from_u128(7).to_string();
    for body in [
        json!([{"op": "replace", "path": "members", "value": [{"value": a}]}]),
        json!([{"op": "remove", "path": "members"}]),
        json!([{"op": "add", "path": "members", "value": null}]),
        json!([{"op": "replace", "value": {"members": [{"value": a}]}}]),
        json!([{"op": "add", "value": {"Members": [{"value": a}]}}]),
        json!([{"op": "remove", "path": format!("members[value ne \"{a}\"]")}]),
        json!([{"op": "remove", "path": "members[display eq \"A\"]"}]),
        json!([{"op": "replace", "path": format!("members[value eq \"{a}\"].display"), "value": "B"}]),
    ] {
        assert_eq!(named_members(&ops(body.clone())), None, "{body}");
    }
}

/// Applying a PATCH to only the members it names changes exactly what applying it to the
/// whole list changes: the worker's shortcut is not a different semantics.
#[test]
fn named_members_alone_give_the_same_change_as_the_whole_list() {
    let all = ids(50);
    let s = |i: u128| Uuid::from_u128(i).to_string();
    for body in [
        json!([{"op": "add", "path": "members", "value": [{"value": s(60), "display": "x"}]}]),
        json!([{"op": "add", "path": "members", "value": [{"value": s(3)}, {"value": s(61)}, {"value": s(61)}]}]),
        json!([{"op": "add", "path": "members", "value": {"value": s(62)}}]),
        json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", s(10))}]),
        json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", s(99))}]),
        json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", s(10).to_uppercase())}]),
        json!([{"op": "remove", "path": "members", "value": [{"value": s(1)}, {"value": s(50)}, {"value": s(77)}]}]),
        json!([
            {"op": "add", "path": "members", "value": [{"value": s(70)}]},
            {"op": "remove", "path": format!("members[value eq \"{}\"]", s(70))},
            {"op": "remove", "path": format!("members[value eq \"{}\"]", s(20))},
            {"op": "add", "path": "members", "value": [{"value": s(20)}]},
            {"op": "replace", "value": {"displayName": "Renamed"}},
        ]),
    ] {
        let ops = ops(body.clone());
        let named: HashSet<Uuid> = named_members(&ops).expect("named").into_iter().collect();
        let scoped: Vec<Uuid> = all.iter().filter(|m| named.contains(m)).copied().collect();
        let whole = diff_members(&all, &patched(&all, &ops).expect("applies"));
        let part = diff_members(&scoped, &patched(&scoped, &ops).expect("applies"));
        assert_eq!(whole, part, "{body}");
    }
    let bad = ops(json!([{"op": "add", "path": "members", "value": [{"value": "nope"}]}]));
    assert!(patched(&all, &bad).is_err() && patched(&[], &bad).is_err());
}

#[test]
fn member_lists_diff_as_sets_in_order() {
    let [a, b, c, d] = [1, 2, 3, 4].map(Uuid::from_u128);
    assert_eq!(
        diff_members(&[a, b, c], &[d, c, a]),
        (vec![d], vec![b]),
        "joiners in the new order, leavers in the old"
    );
    assert_eq!(diff_members(&[a, b], &[b, a]), (vec![], vec![]));
    assert_eq!(diff_members(&[], &[a, b]), (vec![a, b], vec![]));
    assert_eq!(diff_members(&[a, b], &[]), (vec![], vec![a, b]));
    let big = ids(100_000);
    let (added, removed) = diff_members(&big, &big[1..]);
    assert_eq!((added.len(), removed), (0, vec![big[0]]));
}
