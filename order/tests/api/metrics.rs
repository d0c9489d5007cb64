use crate::helpers::spawn_stack_with;

fn value_of(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[actix_web::test]
async fn metrics_show_breaker_state_and_dependency_calls_after_pricing_stops() {
    let mut stack = spawn_stack_with(|c| c.order.breaker.failure_threshold = 2).await;
    stack.place("c1", &[("A002", 1)]).await.assert_status(201);
    let before = stack.order.client.get("/metrics").await.text;
    let closed = r#"circuit_breaker_state{dependency="pricing",state="closed"}"#;
    let open = r#"circuit_breaker_state{dependency="pricing",state="open"}"#;
    assert_eq!(value_of(&before, closed), 1.0, "{before}");
    assert_eq!(value_of(&before, open), 0.0);
    let ok_calls = r#"dependency_calls_total{dependency="pricing",outcome="success"}"#;
    assert_eq!(value_of(&before, ok_calls), 1.0);

    stack.stop_pricing().await;
    for _ in 0..3 {
        stack.place("c1", &[("A002", 1)]).await.assert_status(201);
    }
    let after = stack.order.client.get("/metrics").await.text;
    assert_eq!(value_of(&after, open), 1.0, "{after}");
    assert_eq!(value_of(&after, closed), 0.0);
    let opened =
        r#"circuit_breaker_transitions_total{dependency="pricing",from="closed",to="open"}"#;
    assert_eq!(value_of(&after, opened), 1.0);
    let failed = r#"dependency_calls_total{dependency="pricing",outcome="transport"}"#;
    assert_eq!(
        value_of(&after, failed),
        2.0,
        "two failures open the breaker"
    );
    let rejected = r#"circuit_breaker_rejected_calls_total{dependency="pricing"}"#;
    assert_eq!(
        value_of(&after, rejected),
        1.0,
        "the third order never touched the network"
    );
    let reserve_calls = r#"dependency_calls_total{dependency="inventory",outcome="success"}"#;
    assert_eq!(
        value_of(&after, reserve_calls),
        8.0,
        "reserve + confirm for each of 4 orders"
    );
}
