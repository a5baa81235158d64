//! Alerting in SQLite: rules, destinations, the evaluator's position (moved only from
//! where it was, with its deliveries, in one transaction) and deliveries.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};
use trail_core::Timestamp;

use super::{known_org, named, SqliteStore};
use crate::{
    alerts::{json_list, to_json, AlertRule, Delivery, DeliveryStatus, Destination, Evaluation, NewDelivery},
    Alerting, StoreError,
};

const DELIVERY_COLUMNS: &str = "d.id, o.slug, d.rule, d.destination, d.payload, d.status, d.attempts, d.next_at, \
    d.last_error, d.last_code, d.created_at, d.done_at";

fn delivery(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        org: r.get(1)?,
        rule: r.get(2)?,
        destination: r.get(3)?,
        payload: r.get(4)?,
        status: DeliveryStatus::parse(&r.get::<_, String>(5)?),
        attempts: r.get::<_, i64>(6)? as u32,
        next_at: r.get(7)?,
        last_error: r.get(8)?,
        last_code: r.get(9)?,
        created_at: r.get(10)?,
        done_at: r.get(11)?,
    })
}

fn destinations(c: &Connection, cond: &str, p: impl rusqlite::Params) -> Result<Vec<Destination>, StoreError> {
    let mut stmt = c.prepare(&format!(
        "SELECT d.id, o.slug, d.name, d.kind, d.url, d.recipients, d.secrets, d.enabled, d.created_at \
         FROM alert_destinations d JOIN orgs o ON o.id = d.org_id WHERE {cond} ORDER BY d.id"
    ))?;
    let rows = stmt.query_map(p, |r| {
        Ok(Destination {
            id: r.get(0)?,
            org: r.get(1)?,
            name: r.get(2)?,
            kind: named(r, 3)?,
            url: r.get(4)?,
            recipients: json_list(r.get(5)?),
            secrets: json_list(r.get(6)?),
            enabled: r.get(7)?,
            created_at: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn insert_delivery(c: &Connection, org: i64, d: &NewDelivery, now: i64) -> Result<i64, StoreError> {
    c.prepare_cached(
        "INSERT INTO alert_deliveries (org_id, rule, destination, payload, status, attempts, next_at, created_at) \
         VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?5)",
    )?
    .execute(params![org, d.rule, d.destination, d.payload, now])?;
    Ok(c.last_insert_rowid())
}

#[async_trait]
impl Alerting for SqliteStore {
    async fn alert_rules(&self, org: &str) -> Result<Vec<AlertRule>, StoreError> {
        let org = org.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT r.name, r.enabled, r.query, r.threshold, r.window_secs, r.group_by, r.quiet_secs, \
                 r.destinations FROM alert_rules r JOIN orgs o ON o.id = r.org_id WHERE o.slug = ?1 ORDER BY r.name",
            )?;
            let rows = stmt.query_map([&org], |r| {
                Ok(AlertRule {
                    org: org.clone(),
                    name: r.get(0)?,
                    enabled: r.get(1)?,
                    query: r.get(2)?,
                    threshold: r.get::<_, i64>(3)? as u32,
                    window_secs: r.get::<_, i64>(4)? as u32,
                    group_by: r.get(5)?,
                    quiet_secs: r.get::<_, i64>(6)? as u32,
                    destinations: json_list(r.get(7)?),
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn put_alert_rule(&self, rule: AlertRule) -> Result<(), StoreError> {
        self.write(move |c| {
            let org = known_org(c, &rule.org)?;
            c.execute(
                "INSERT INTO alert_rules (org_id, name, enabled, query, threshold, window_secs, group_by, quiet_secs, \
                 destinations) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (org_id, name) DO UPDATE SET \
                 enabled = excluded.enabled, query = excluded.query, threshold = excluded.threshold, \
                 window_secs = excluded.window_secs, group_by = excluded.group_by, quiet_secs = excluded.quiet_secs, \
                 destinations = excluded.destinations",
                params![
                    org,
                    rule.name,
                    rule.enabled,
                    rule.query,
                    rule.threshold,
                    rule.window_secs,
                    rule.group_by,
                    rule.quiet_secs,
                    to_json(&rule.destinations)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn delete_alert_rule(&self, org: &str, name: &str) -> Result<bool, StoreError> {
        let (org, name) = (org.to_string(), name.to_string());
        self.write(move |c| {
            let n = c.execute(
                "DELETE FROM alert_rules WHERE org_id = (SELECT id FROM orgs WHERE slug = ?1) AND name = ?2",
                params![org, name],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn destinations(&self, org: &str) -> Result<Vec<Destination>, StoreError> {
        let org = org.to_string();
        self.read(move |c| destinations(c, "o.slug = ?1", [org])).await
    }

    async fn create_destination(&self, d: Destination) -> Result<Destination, StoreError> {
        self.write(move |c| {
            let org = known_org(c, &d.org)?;
            c.execute(
                "INSERT INTO alert_destinations (org_id, name, kind, url, recipients, secrets, enabled, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    org,
                    d.name,
                    d.kind.as_str(),
                    d.url,
                    to_json(&d.recipients),
                    to_json(&d.secrets),
                    d.enabled,
                    d.created_at
                ],
            )?;
            let id = c.last_insert_rowid();
            destinations(c, "d.id = ?1", [id])?.pop().ok_or_else(|| StoreError::Corrupt("destination vanished".into()))
        })
        .await
    }

    async fn update_destination(&self, d: Destination) -> Result<bool, StoreError> {
        self.write(move |c| {
            let n = c.execute(
                "UPDATE alert_destinations SET name = ?3, url = ?4, recipients = ?5, secrets = ?6, enabled = ?7 \
                 WHERE id = ?1 AND org_id = (SELECT id FROM orgs WHERE slug = ?2)",
                params![d.id, d.org, d.name, d.url, to_json(&d.recipients), to_json(&d.secrets), d.enabled],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_destination(&self, org: &str, id: i64) -> Result<bool, StoreError> {
        let org = org.to_string();
        self.write(move |c| {
            let n = c.execute(
                "DELETE FROM alert_destinations WHERE id = ?1 AND org_id = (SELECT id FROM orgs WHERE slug = ?2)",
                params![id, org],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn evaluation(&self, org: &str) -> Result<Option<Evaluation>, StoreError> {
        let org = org.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT e.cursor, e.state FROM alert_evaluations e JOIN orgs o ON o.id = e.org_id WHERE o.slug = ?1",
            )?
            .query_row([org], |r| Ok(Evaluation { cursor: r.get::<_, i64>(0)? as u64, state: r.get(1)? }))
            .optional()?)
        })
        .await
    }

    async fn commit_evaluation(
        &self,
        org: &str,
        from: Option<u64>,
        to: Evaluation,
        deliveries: Vec<NewDelivery>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let now = now.0;
        let org = org.to_string();
        self.write(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let org_id = known_org(&tx, &org)?;
            let moved = match from {
                None => tx.execute(
                    "INSERT INTO alert_evaluations (org_id, cursor, state) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                    params![org_id, to.cursor as i64, to.state],
                )?,
                Some(from) => tx.execute(
                    "UPDATE alert_evaluations SET cursor = ?3, state = ?4 WHERE org_id = ?1 AND cursor = ?2",
                    params![org_id, from as i64, to.cursor as i64, to.state],
                )?,
            };
            if moved == 0 {
                return Ok(false);
            }
            for d in &deliveries {
                insert_delivery(&tx, org_id, d, now)?;
            }
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn deliveries(&self, org: &str, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let org = org.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries d JOIN orgs o ON o.id = d.org_id WHERE o.slug = ?1 \
                 ORDER BY d.id DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![org, limit as i64], delivery)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn delivery(&self, org: &str, id: i64) -> Result<Option<Delivery>, StoreError> {
        let org = org.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries d JOIN orgs o ON o.id = d.org_id \
                 WHERE o.slug = ?1 AND d.id = ?2"
            ))?
            .query_row(params![org, id], delivery)
            .optional()?)
        })
        .await
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let now = now.0;
        let until = until.0;
        self.write(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let due: Vec<Delivery> = {
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries d JOIN orgs o ON o.id = d.org_id \
                     WHERE d.status = 'pending' AND d.next_at <= ?1 ORDER BY d.next_at LIMIT ?2"
                ))?;
                let rows = stmt.query_map(params![now, limit as i64], delivery)?;
                rows.collect::<Result<_, _>>()?
            };
            for d in &due {
                tx.execute("UPDATE alert_deliveries SET next_at = ?2 WHERE id = ?1", params![d.id, until])?;
            }
            tx.commit()?;
            Ok(due)
        })
        .await
    }

    async fn update_delivery(&self, d: &Delivery) -> Result<(), StoreError> {
        let d = d.clone();
        self.write(move |c| {
            c.execute(
                "UPDATE alert_deliveries SET status = ?2, attempts = ?3, next_at = ?4, last_error = ?5, \
                 last_code = ?6, done_at = ?7 WHERE id = ?1",
                params![d.id, d.status.as_str(), d.attempts, d.next_at, d.last_error, d.last_code, d.done_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn add_delivery(&self, org: &str, d: NewDelivery, now: Timestamp) -> Result<i64, StoreError> {
        let now = now.0;
        let org = org.to_string();
        self.write(move |c| {
            let org_id = known_org(c, &org)?;
            insert_delivery(c, org_id, &d, now)
        })
        .await
    }
}
