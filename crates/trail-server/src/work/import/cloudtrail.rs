//! AWS CloudTrail records (log files `{"Records": […]}`, or single records): the
//! actor from `userIdentity` (user name, ARN, type, an assumed role's issuer), the
//! action `<service>:<eventName>`, the result from `errorCode`, the source address (a
//! service name such as `ec2.amazonaws.com` is kept as the actor's origin), the user
//! agent and request id, the account as the workspace and the region as the project,
//! `requestParameters` as `details.request`, `responseElements` as the response, and
//! `eventID` as the idempotency key. The rest of the record is kept in `details.raw`.

use serde_json::{json, Map, Value};

use super::{action, address, missing, text};
use crate::work::WorkError;

pub fn map(r: &Value) -> Result<Value, WorkError> {
    let name = text(r, &["eventName"]).ok_or_else(|| missing("eventName"))?;
    let source = text(r, &["eventSource"]).ok_or_else(|| missing("eventSource"))?;
    let service = source.split('.').next().unwrap_or(source);
    let id = text(r, &["eventID"]).ok_or_else(|| missing("eventID"))?;
    let mut e = Map::new();
    e.insert("action".into(), action(service, name).into());
    e.insert("idempotency_key".into(), format!("cloudtrail:{id}").into());
    if let Some(t) = text(r, &["eventTime"]) {
        e.insert("timestamp".into(), t.into());
    }
    let u = r.get("userIdentity").unwrap_or(&Value::Null);
    let kind = text(u, &["type"]).unwrap_or("Unknown");
    let issuer = text(u, &["sessionContext", "sessionIssuer", "userName"]);
    let actor_name = text(u, &["userName"]).or(issuer).or(text(u, &["invokedBy"])).or(text(u, &["principalId"]));
    let actor_id = text(u, &["arn"]).or(text(u, &["principalId"])).or(text(u, &["accountId"]));
    let mut actor = Map::new();
    if let Some(v) = actor_id {
        actor.insert("id".into(), v.into());
    }
    if let Some(v) = actor_name {
        actor.insert("name".into(), v.into());
    }
    actor.insert("type".into(), if kind == "AWSService" { "service" } else { "user" }.into());
    e.insert("actor".into(), Value::Object(actor));
    match text(r, &["errorCode"]) {
        Some(code) => {
            e.insert("result".into(), "FAILED".into());
            let msg = text(r, &["errorMessage"]).map_or(code.to_string(), |m| format!("{code}: {m}"));
            e.insert("error".into(), msg.into());
        }
        None => {
            e.insert("result".into(), "DONE".into());
        }
    }
    let origin = text(r, &["sourceIPAddress"]);
    if let Some(ip) = address(origin) {
        e.insert("source_ip".into(), ip.into());
    }
    if let Some(ua) = text(r, &["userAgent"]) {
        e.insert("user_agent".into(), ua.chars().take(1024).collect::<String>().into());
    }
    if let Some(id) = text(r, &["requestID"]) {
        e.insert("request_id".into(), id.into());
    }
    if let Some(res) = r.get("resources").and_then(Value::as_array).and_then(|a| a.first()) {
        let mut m = Map::new();
        if let Some(t) = text(res, &["type"]) {
            m.insert("type".into(), t.into());
        }
        if let Some(arn) = text(res, &["ARN"]) {
            m.insert("id".into(), arn.into());
            m.insert("name".into(), arn.rsplit([':', '/']).next().unwrap_or(arn).into());
        }
        e.insert("resource".into(), Value::Object(m));
    }
    let account = text(r, &["recipientAccountId"]).or(text(u, &["accountId"]));
    let mut context = Map::new();
    if let Some(a) = account {
        context.insert("workspace".into(), json!({"id": a, "name": a}));
    }
    if let Some(region) = text(r, &["awsRegion"]) {
        context.insert("project".into(), region.into());
    }
    if !context.is_empty() {
        e.insert("context".into(), Value::Object(context));
    }
    let mut raw = r.clone();
    let (request, response) = match raw.as_object_mut() {
        Some(m) => (m.remove("requestParameters"), m.remove("responseElements")),
        None => (None, None),
    };
    let mut details = json!({"raw": raw, "user_type": kind});
    if let Some(o) = origin.filter(|o| address(Some(o)).is_none()) {
        details["origin"] = o.into();
    }
    if let Some(req) = request.filter(|v| !v.is_null()) {
        details["request"] = req;
    }
    e.insert("details".into(), details);
    if let Some(resp) = response.filter(|v| !v.is_null()) {
        e.insert("response".into(), resp);
    }
    Ok(Value::Object(e))
}

#[cfg(test)]
mod tests {
    use super::super::{convert, Format};

    #[test]
    fn a_log_file_with_users_roles_services_and_errors() {
        let file = r#"{"Records": [
          {"eventVersion": "1.08", "eventTime": "2024-03-01T10:00:00Z", "eventSource": "ec2.amazonaws.com",
           "eventName": "RunInstances", "awsRegion": "eu-west-1", "sourceIPAddress": "203.0.113.7",
           "userAgent": "aws-cli/2.15", "requestID": "req-1", "eventID": "e-1", "recipientAccountId": "111122223333",
           "userIdentity": {"type": "IAMUser", "userName": "alice", "arn": "arn:aws:iam::111122223333:user/alice", "accountId": "111122223333"},
           "requestParameters": {"instanceType": "t3.micro"}, "responseElements": {"instancesSet": {}},
           "resources": [{"type": "AWS::EC2::Instance", "ARN": "arn:aws:ec2:eu-west-1:111122223333:instance/i-1"}]},
          {"eventTime": "2024-03-01T10:01:00Z", "eventSource": "s3.amazonaws.com", "eventName": "DeleteBucket",
           "sourceIPAddress": "cloudformation.amazonaws.com", "eventID": "e-2", "errorCode": "AccessDenied",
           "errorMessage": "no", "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/deployer/x",
           "sessionContext": {"sessionIssuer": {"userName": "deployer"}}}},
          {"eventTime": "2024-03-01T10:02:00Z", "eventSource": "kms.amazonaws.com", "eventName": "Decrypt", "eventID": "e-3",
           "userIdentity": {"type": "AWSService", "invokedBy": "lambda.amazonaws.com"}},
          {"eventSource": "iam.amazonaws.com", "eventID": "e-4"}
        ]}"#;
        let c = convert(Format::CloudTrail, file);
        assert_eq!(c.events.len(), 3);
        assert_eq!(c.skipped.len(), 1);
        assert!(c.skipped[0].reason.contains("eventName"), "{:?}", c.skipped);
        let e = &c.events[0];
        assert_eq!((e.category.as_str(), e.operation.as_str()), ("ec2", "runinstances"));
        assert_eq!(e.actor.as_ref().and_then(|a| a.name.as_deref()), Some("alice"));
        assert_eq!(e.source_ip.map(|a| a.to_string()).as_deref(), Some("203.0.113.7"));
        assert_eq!(e.idempotency_key.as_deref(), Some("cloudtrail:e-1"));
        assert_eq!(e.details.as_ref().unwrap()["request"]["instanceType"], "t3.micro");
        let denied = &c.events[1];
        assert_eq!(denied.result, trail_core::Outcome::Failed);
        assert_eq!(denied.error.as_deref(), Some("AccessDenied: no"));
        assert_eq!(denied.actor.as_ref().and_then(|a| a.name.as_deref()), Some("deployer"));
        assert!(denied.source_ip.is_none());
        assert_eq!(denied.details.as_ref().unwrap()["origin"], "cloudformation.amazonaws.com");
        assert_eq!(c.events[2].actor.as_ref().and_then(|a| a.kind.as_deref()), Some("service"));
        // A single record, and JSON Lines of records, read the same way.
        let one = convert(
            Format::CloudTrail,
            r#"{"eventSource":"sts.amazonaws.com","eventName":"GetCallerIdentity","eventID":"e-9"}"#,
        );
        assert_eq!((one.events.len(), one.skipped.len()), (1, 0));
        let lines = "{\"eventSource\":\"a.amazonaws.com\",\"eventName\":\"X\",\"eventID\":\"1\"}\nnot json\n";
        let c = convert(Format::CloudTrail, lines);
        assert_eq!((c.events.len(), c.skipped.len(), c.skipped[0].line), (1, 1, 2));
    }
}
