use crate::helpers::spawn_app;

fn value_of(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[actix_web::test]
async fn metrics_count_requests_by_route_template_and_status() {
    let app = spawn_app().await;
    for sku in ["A001", "A002", "B001"] {
        app.client
            .get(&format!("/price/{sku}"))
            .await
            .assert_status(200);
    }
    app.client.get("/price/Z999").await.assert_status(404);
    app.client.get("/no/such/path").await.assert_status(404);

    let res = app.client.get("/metrics").await;
    res.assert_status(200);
    let text = &res.text;
    let ok = r#"http_requests_total{method="GET",route="/price/{sku}",status="200"}"#;
    let missing = r#"http_requests_total{method="GET",route="/price/{sku}",status="404"}"#;
    let unmatched = r#"http_requests_total{method="GET",route="unmatched",status="404"}"#;
    assert_eq!(value_of(text, ok), Some(3.0), "{text}");
    assert_eq!(value_of(text, missing), Some(1.0), "{text}");
    assert_eq!(value_of(text, unmatched), Some(1.0), "{text}");
    let count = r#"http_request_duration_seconds_count{method="GET",route="/price/{sku}"}"#;
    assert_eq!(value_of(text, count), Some(4.0), "{text}");
    assert!(text.contains("# TYPE http_request_duration_seconds histogram"));
}
