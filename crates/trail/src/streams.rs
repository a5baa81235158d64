//! `trail streams`: an organization's streams to SIEMs from the command line, checked
//! as the API checks them; changes are recorded in its log.

use anyhow::{bail, Result};
use serde_json::json;
use trail_server::{
    work::{
        selfaudit,
        streams::setup::{self, StartAt, StreamSpec},
        Services,
    },
    ServerConfig,
};
use trail_store::streams::StreamState;

use crate::{
    config::Config,
    store::{known_org, open_store},
    StreamsCommand,
};

/// `now`, `beginning`, a seq or an RFC 3339 time.
fn start_at(text: &str) -> StartAt {
    match text {
        "now" | "beginning" => StartAt::Named(text.into()),
        t => match t.parse::<u64>() {
            Ok(seq) => StartAt::Seq { seq },
            Err(_) => StartAt::Time { time: t.into() },
        },
    }
}

fn fail(e: trail_server::work::WorkError) -> anyhow::Error {
    match e {
        trail_server::work::WorkError::Field(f) => anyhow::anyhow!("--{}: {}", f.field, f.message),
        other => anyhow::anyhow!("{other}"),
    }
}

pub(crate) async fn streams_cmd(config: &Config, command: StreamsCommand) -> Result<()> {
    let store = open_store(config).await?;
    let server = ServerConfig { streams: config.streams.clone(), ..ServerConfig::default() };
    let st = Services::new(store.clone(), server, trail_server::system_clock());
    let out = match known_org(&*store, command.org()).await {
        Ok(()) => run(&st, command).await,
        Err(e) => Err(e),
    };
    store.close();
    out
}

async fn record(st: &Services, org: &str, action: &'static str, id: i64, name: &str, details: serde_json::Value) {
    let resource = json!({"type": "stream", "id": id.to_string(), "name": name});
    selfaudit::record_system(st, org, action, resource, details).await;
}

async fn run(st: &Services, command: StreamsCommand) -> Result<()> {
    match command {
        StreamsCommand::List { org } => {
            println!(
                "{:>4} {:<20} {:<7} {:<10} {:<9} {:>10} {:>10} {:>8} {:>8}  target / last error",
                "id", "name", "kind", "format", "status", "last seq", "lag", "sent", "failed"
            );
            for s in st.store.streams(Some(&org)).await? {
                let v = setup::view(st, &s).await.map_err(fail)?;
                let target = v.url.clone().or(v.address.clone()).unwrap_or_default();
                println!(
                    "{:>4} {:<20} {:<7} {:<10} {:<9} {:>10} {:>10} {:>8} {:>8}  {target} {}",
                    v.id,
                    v.name,
                    v.kind,
                    v.format,
                    v.status,
                    v.last_seq.map_or("-".into(), |x| x.to_string()),
                    format!("{}/{:.0}s", v.lag_events, v.lag_seconds),
                    v.sent,
                    v.failed,
                    v.last_error.unwrap_or_default()
                );
            }
            Ok(())
        }
        StreamsCommand::Create { org, name, kind, url, address, tls, format, query, start, headers } => {
            let mut map = std::collections::BTreeMap::new();
            for h in headers {
                let Some((k, v)) = h.split_once(':') else { bail!("--header must be 'Name: value', not '{h}'") };
                map.insert(k.trim().to_string(), v.trim().to_string());
            }
            let spec = StreamSpec {
                name: Some(name),
                kind: Some(kind),
                url,
                address,
                tls: Some(tls),
                format: Some(format),
                query,
                start: Some(start_at(&start)),
                headers: (!map.is_empty()).then_some(map),
            };
            let s = setup::new_stream(st, &org, &spec).await.map_err(fail)?;
            let s = st.store.create_stream(s).await?;
            let details = json!({"kind": s.kind, "format": s.format, "cursor": s.cursor});
            record(st, &org, "stream:create", s.id, &s.name, details).await;
            println!("stream {} created; it starts at seq {}", s.id, s.cursor);
            if let Some(secret) = s.secrets.first() {
                println!("signing secret (shown only now): {secret}");
            }
            Ok(())
        }
        StreamsCommand::Pause { org, id } => control(st, &org, id, StreamState::Paused, None).await,
        StreamsCommand::Resume { org, id } => control(st, &org, id, StreamState::Active, None).await,
        StreamsCommand::Replay { org, id, from } => {
            let at = setup::position(st, &org, &start_at(&from), "from").await.map_err(fail)?;
            control(st, &org, id, StreamState::Active, Some(at)).await
        }
        StreamsCommand::Delete { org, id } => {
            let Some(s) = st.store.get_stream(&org, id).await? else { bail!("{org} has no stream {id}") };
            st.store.delete_stream(&org, id).await?;
            record(st, &org, "stream:delete", id, &s.name, json!({"cursor": s.cursor})).await;
            println!("stream {id} deleted");
            Ok(())
        }
    }
}

async fn control(st: &Services, org: &str, id: i64, state: StreamState, replay: Option<u64>) -> Result<()> {
    let Some(mut s) = st.store.get_stream(org, id).await? else { bail!("{org} has no stream {id}") };
    // A replay keeps a paused stream paused.
    if replay.is_none() || s.state != StreamState::Paused {
        s.state = state;
    }
    if s.state == StreamState::Active {
        s.failing_since = None;
        s.last_error = None;
        s.alerted = false;
    }
    st.store.change_stream(&s, replay).await?;
    let action = match (replay, state) {
        (Some(_), _) => "stream:replay",
        (None, StreamState::Paused) => "stream:pause",
        _ => "stream:resume",
    };
    record(st, org, action, id, &s.name, json!({"from_cursor": s.cursor, "cursor": replay.unwrap_or(s.cursor)})).await;
    match replay {
        Some(at) => println!("stream {id} sends again from seq {at}"),
        None => println!("stream {id} is {}", s.state.as_str()),
    }
    Ok(())
}
