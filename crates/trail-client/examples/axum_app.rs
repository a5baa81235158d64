//! An axum app that audits itself to Trail: every mutating request is recorded with
//! who made it (from the app's own authentication), its route, result and address.
//!
//! ```sh
//! TRAIL_URL=http://127.0.0.1:8080 TRAIL_KEY=<an ingest key> cargo run -p trail-client --example axum_app
//! curl -X POST -H 'x-user: ann@example.com' http://127.0.0.1:3000/invoices/42/void
//! ```

use std::{net::SocketAddr, time::Duration};

use axum::{extract::Request, middleware::Next, routing::post, Router};
use trail_client::{Actor, AuditLayer, Client, Config};

/// Stands for the app's authentication: whoever it finds goes into the extensions.
async fn authenticate(mut req: Request, next: Next) -> axum::response::Response {
    let user = req.headers().get("x-user").and_then(|v| v.to_str().ok()).map(str::to_string);
    if let Some(email) = user {
        req.extensions_mut().insert(Actor { email: Some(email), ..Actor::default() });
    }
    next.run(req).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    // TRAIL_URL and TRAIL_KEY; a missing one is named.
    let client = Client::new(Config::from_env()?);
    let app = Router::new()
        .route("/invoices/{id}/void", post(|| async { "voided" }))
        .route("/invoices", post(|| async { "created" }).get(|| async { "[]" }))
        .layer(AuditLayer::new(client.clone()).category("billing"))
        .layer(axum::middleware::from_fn(authenticate));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://127.0.0.1:3000");
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    // What is still buffered is delivered before the process ends, if Trail answers
    // within 5 s; Ctrl-C never hangs on a Trail that is down.
    let watch = client.clone();
    if !client.shutdown(Duration::from_secs(5)).await {
        eprintln!("Trail did not take every audit event in time: {:?}", watch.stats());
    }
    if let Some(why) = watch.refusal() {
        eprintln!("Trail refused the key: {why}");
    }
    Ok(())
}
