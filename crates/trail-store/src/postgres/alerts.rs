//! Alerting in PostgreSQL: rules, destinations, the evaluator's position (moved only
//! from where it was, with its deliveries, in one transaction, so that of several
//! servers one evaluation wins) and deliveries (claimed with `SKIP LOCKED`, so that each
//! is attempted by one server at a time).

use async_trait::async_trait;
use tokio_postgres::Row;
use trail_core::Timestamp;

use super::{named, org_id, pg, PgStore};
use crate::{
    alerts::{json_list, to_json, AlertRule, Delivery, DeliveryStatus, Destination, Evaluation, NewDelivery},
    Alerting, StoreError,
};

const DELIVERY_COLUMNS: &str = "d.id, o.slug, d.rule, d.destination, d.payload, d.status, d.attempts, d.next_at, \
    d.last_error, d.last_code, d.created_at, d.done_at";

fn delivery(r: &Row) -> Delivery {
    Delivery {
        id: r.get(0),
        org: r.get(1),
        rule: r.get(2),
        destination: r.get(3),
        payload: r.get(4),
        status: DeliveryStatus::parse(r.get(5)),
        attempts: r.get::<_, i64>(6) as u32,
        next_at: r.get(7),
        last_error: r.get(8),
        last_code: r.get(9),
        created_at: r.get(10),
        done_at: r.get(11),
    }
}

fn destination(r: &Row) -> Result<Destination, StoreError> {
    Ok(Destination {
        id: r.get(0),
        org: r.get(1),
        name: r.get(2),
        kind: named(r, 3)?,
        url: r.get(4),
        recipients: json_list(r.get(5)),
        secrets: json_list(r.get(6)),
        enabled: r.get(7),
        created_at: r.get(8),
    })
}

const DESTINATION_SELECT: &str = "SELECT d.id, o.slug, d.name, d.kind, d.url, d.recipients, d.secrets, d.enabled, \
    d.created_at FROM alert_destinations d JOIN orgs o ON o.id = d.org_id";

async fn insert_delivery(
    c: &impl deadpool_postgres::GenericClient,
    org: i64,
    d: &NewDelivery,
    now: i64,
) -> Result<i64, StoreError> {
    Ok(c.query_one(
        "INSERT INTO alert_deliveries (org_id, rule, destination, payload, status, attempts, next_at, created_at) \
         VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5) RETURNING id",
        &[&org, &d.rule, &d.destination, &d.payload, &now],
    )
    .await
    .map_err(pg)?
    .get(0))
}

#[async_trait]
impl Alerting for PgStore {
    async fn alert_rules(&self, org: &str) -> Result<Vec<AlertRule>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT r.name, r.enabled, r.query, r.threshold, r.window_secs, r.group_by, r.quiet_secs, \
                 r.destinations FROM alert_rules r JOIN orgs o ON o.id = r.org_id WHERE o.slug = $1 ORDER BY r.name",
                &[&org],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| AlertRule {
                org: org.to_string(),
                name: r.get(0),
                enabled: r.get(1),
                query: r.get(2),
                threshold: r.get::<_, i64>(3) as u32,
                window_secs: r.get::<_, i64>(4) as u32,
                group_by: r.get(5),
                quiet_secs: r.get::<_, i64>(6) as u32,
                destinations: json_list(r.get(7)),
            })
            .collect())
    }

    async fn put_alert_rule(&self, rule: AlertRule) -> Result<(), StoreError> {
        let c = self.client().await?;
        let org = org_id(&c, &rule.org).await?;
        c.execute(
            "INSERT INTO alert_rules (org_id, name, enabled, query, threshold, window_secs, group_by, quiet_secs, \
             destinations) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (org_id, name) DO UPDATE SET \
             enabled = EXCLUDED.enabled, query = EXCLUDED.query, threshold = EXCLUDED.threshold, \
             window_secs = EXCLUDED.window_secs, group_by = EXCLUDED.group_by, quiet_secs = EXCLUDED.quiet_secs, \
             destinations = EXCLUDED.destinations",
            &[
                &org,
                &rule.name,
                &rule.enabled,
                &rule.query,
                &(rule.threshold as i64),
                &(rule.window_secs as i64),
                &rule.group_by,
                &(rule.quiet_secs as i64),
                &to_json(&rule.destinations),
            ],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    async fn delete_alert_rule(&self, org: &str, name: &str) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "DELETE FROM alert_rules WHERE org_id = (SELECT id FROM orgs WHERE slug = $1) AND name = $2",
                &[&org, &name],
            )
            .await
            .map_err(pg)?;
        Ok(n > 0)
    }

    async fn destinations(&self, org: &str) -> Result<Vec<Destination>, StoreError> {
        let c = self.client().await?;
        let rows =
            c.query(&format!("{DESTINATION_SELECT} WHERE o.slug = $1 ORDER BY d.id"), &[&org]).await.map_err(pg)?;
        rows.iter().map(destination).collect()
    }

    async fn create_destination(&self, d: Destination) -> Result<Destination, StoreError> {
        let c = self.client().await?;
        let org = org_id(&c, &d.org).await?;
        let id: i64 = c
            .query_one(
                "INSERT INTO alert_destinations (org_id, name, kind, url, recipients, secrets, enabled, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                &[
                    &org,
                    &d.name,
                    &d.kind.as_str(),
                    &d.url,
                    &to_json(&d.recipients),
                    &to_json(&d.secrets),
                    &d.enabled,
                    &d.created_at,
                ],
            )
            .await
            .map_err(pg)?
            .get(0);
        let row = c.query_one(&format!("{DESTINATION_SELECT} WHERE d.id = $1"), &[&id]).await.map_err(pg)?;
        destination(&row)
    }

    async fn update_destination(&self, d: Destination) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE alert_destinations SET name = $3, url = $4, recipients = $5, secrets = $6, enabled = $7 \
                 WHERE id = $1 AND org_id = (SELECT id FROM orgs WHERE slug = $2)",
                &[&d.id, &d.org, &d.name, &d.url, &to_json(&d.recipients), &to_json(&d.secrets), &d.enabled],
            )
            .await
            .map_err(pg)?;
        Ok(n > 0)
    }

    async fn delete_destination(&self, org: &str, id: i64) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "DELETE FROM alert_destinations WHERE id = $1 AND org_id = (SELECT id FROM orgs WHERE slug = $2)",
                &[&id, &org],
            )
            .await
            .map_err(pg)?;
        Ok(n > 0)
    }

    async fn evaluation(&self, org: &str) -> Result<Option<Evaluation>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT e.cursor, e.state FROM alert_evaluations e JOIN orgs o ON o.id = e.org_id WHERE o.slug = $1",
                &[&org],
            )
            .await
            .map_err(pg)?;
        Ok(row.map(|r| Evaluation { cursor: r.get::<_, i64>(0) as u64, state: r.get(1) }))
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
        let mut c = self.client().await?;
        let org_id = org_id(&c, org).await?;
        let tx = c.transaction().await.map_err(pg)?;
        let moved = match from {
            None => tx
                .execute(
                    "INSERT INTO alert_evaluations (org_id, cursor, state) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&org_id, &(to.cursor as i64), &to.state],
                )
                .await
                .map_err(pg)?,
            Some(from) => tx
                .execute(
                    "UPDATE alert_evaluations SET cursor = $3, state = $4 WHERE org_id = $1 AND cursor = $2",
                    &[&org_id, &(from as i64), &(to.cursor as i64), &to.state],
                )
                .await
                .map_err(pg)?,
        };
        if moved == 0 {
            return Ok(false);
        }
        for d in &deliveries {
            insert_delivery(&tx, org_id, d, now).await?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(true)
    }

    async fn deliveries(&self, org: &str, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries d JOIN orgs o ON o.id = d.org_id \
                     WHERE o.slug = $1 ORDER BY d.id DESC LIMIT $2"
                ),
                &[&org, &(limit as i64)],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(delivery).collect())
    }

    async fn delivery(&self, org: &str, id: i64) -> Result<Option<Delivery>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries d JOIN orgs o ON o.id = d.org_id \
                     WHERE o.slug = $1 AND d.id = $2"
                ),
                &[&org, &id],
            )
            .await
            .map_err(pg)?;
        Ok(row.as_ref().map(delivery))
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let now = now.0;
        let until = until.0;
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "WITH due AS (SELECT id FROM alert_deliveries WHERE status = 'pending' AND next_at <= $1 \
                     ORDER BY next_at LIMIT $3 FOR UPDATE SKIP LOCKED), \
                     claimed AS (UPDATE alert_deliveries d SET next_at = $2 FROM due WHERE d.id = due.id \
                     RETURNING d.*) \
                     SELECT {DELIVERY_COLUMNS} FROM claimed d JOIN orgs o ON o.id = d.org_id"
                ),
                &[&now, &until, &(limit as i64)],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(delivery).collect())
    }

    async fn update_delivery(&self, d: &Delivery) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "UPDATE alert_deliveries SET status = $2, attempts = $3, next_at = $4, last_error = $5, last_code = $6, \
             done_at = $7 WHERE id = $1",
            &[&d.id, &d.status.as_str(), &(d.attempts as i64), &d.next_at, &d.last_error, &d.last_code, &d.done_at],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    async fn add_delivery(&self, org: &str, d: NewDelivery, now: Timestamp) -> Result<i64, StoreError> {
        let now = now.0;
        let c = self.client().await?;
        let org_id = org_id(&c, org).await?;
        insert_delivery(&c, org_id, &d, now).await
    }
}
