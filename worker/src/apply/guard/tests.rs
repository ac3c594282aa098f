use super::*;

fn guard() -> Guard {
    Guard {
        enabled: true,
        threshold_percent: 10,
        min_count: 3,
        window_minutes: 60,
        tripped_at: None,
        rejected_until: None,
    }
}

#[test]
fn the_limit_is_the_share_or_the_minimum_whichever_is_more() {
    let g = guard();
    assert_eq!(g.limit(40), 4);
    assert_eq!(g.limit(41), 5, "rounded up");
    assert_eq!(g.limit(10), 3, "never below min_count");
    assert_eq!(Guard { min_count: 10, ..g }.limit(40), 10);
}

#[test]
fn the_deprovision_past_the_limit_trips_and_later_ones_are_held() {
    let now = Utc::now();
    let g = guard();
    // 40 people at the window's start, 3 gone: the 4th passes, the 5th trips.
    assert_eq!(
        decide(&g, Hold::None, 3, 37, now),
        Verdict::Pass { counted: true }
    );
    assert_eq!(
        decide(&g, Hold::None, 4, 36, now),
        Verdict::Hold {
            trips: true,
            recent: 4,
            limit: 4
        }
    );
    let tripped = Guard {
        tripped_at: Some(now),
        ..g.clone()
    };
    assert!(matches!(
        decide(&tripped, Hold::Held, 0, 36, now),
        Verdict::Hold { trips: false, .. }
    ));
    assert_eq!(
        decide(&tripped, Hold::Approved, 4, 36, now),
        Verdict::Pass { counted: false },
        "an approved one passes"
    );
}

#[test]
fn a_rejection_refuses_until_it_runs_out_and_off_means_off() {
    let now = Utc::now();
    let rejected = Guard {
        rejected_until: Some(now + Duration::minutes(5)),
        ..guard()
    };
    assert_eq!(
        decide(&rejected, Hold::Approved, 0, 40, now),
        Verdict::Refuse {
            until: now + Duration::minutes(5)
        }
    );
    assert_eq!(
        decide(&rejected, Hold::None, 0, 40, now + Duration::minutes(6)),
        Verdict::Pass { counted: true }
    );
    let off = Guard {
        enabled: false,
        ..guard()
    };
    assert_eq!(
        decide(&off, Hold::None, 1000, 1, now),
        Verdict::Pass { counted: false }
    );
}

#[test]
fn the_details_say_it_is_held_for_approval_and_nothing_changed() {
    let d = held_detail("deactivate", &guard());
    assert!(d.contains("held for an admin's approval") && d.contains("Nothing was changed"));
    assert!(held_detail("delete", &guard()).starts_with("this deletion"));
}
