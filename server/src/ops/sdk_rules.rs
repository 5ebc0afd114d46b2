//! The bucket rules `bucket setup` and `doctor` read and write, converted between aws-sdk-s3's
//! types (CORS rules, lifecycle rules with their filters, transitions and expirations) and the
//! JSON shape `aws s3api put-bucket-cors` / `put-bucket-lifecycle-configuration` take, every field
//! kept, so another tool's rules survive a merge unchanged.

use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, CorsRule, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleAndOperator, LifecycleRuleFilter, NoncurrentVersionExpiration,
    NoncurrentVersionTransition, Tag, Transition, TransitionStorageClass,
};
use serde_json::{Map, Value, json};

use super::error::OpsError;

pub fn invalid(operation: &'static str, e: &dyn std::fmt::Display) -> OpsError {
    OpsError::Store {
        operation,
        detail: format!("cannot build the configuration: {e}"),
    }
}

/// Inserts `value` under `name` unless it is absent.
fn put(map: &mut Map<String, Value>, name: &str, value: Option<Value>) {
    if let Some(v) = value {
        map.insert(name.to_owned(), v);
    }
}

fn date(d: Option<&DateTime>) -> Option<Value> {
    d.and_then(|d| d.fmt(DateTimeFormat::DateTime).ok())
        .map(Value::String)
}

fn tag_json(t: &Tag) -> Value {
    json!({"Key": t.key(), "Value": t.value()})
}

pub fn cors_to_json(r: &CorsRule) -> Value {
    let mut m = Map::new();
    put(&mut m, "ID", r.id().map(|s| json!(s)));
    put(&mut m, "AllowedOrigins", Some(json!(r.allowed_origins())));
    put(&mut m, "AllowedMethods", Some(json!(r.allowed_methods())));
    put(
        &mut m,
        "AllowedHeaders",
        r.allowed_headers.as_ref().map(|h| json!(h)),
    );
    put(
        &mut m,
        "ExposeHeaders",
        r.expose_headers.as_ref().map(|h| json!(h)),
    );
    put(
        &mut m,
        "MaxAgeSeconds",
        r.max_age_seconds().map(|s| json!(s)),
    );
    Value::Object(m)
}

fn strings(v: &Value, field: &str) -> Option<Vec<String>> {
    v.get(field)?.as_array().map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    })
}

fn string(v: &Value, field: &str) -> Option<String> {
    v.get(field)?.as_str().map(str::to_owned)
}

fn int(v: &Value, field: &str) -> Option<i32> {
    v.get(field)?.as_i64().and_then(|n| i32::try_from(n).ok())
}

fn long(v: &Value, field: &str) -> Option<i64> {
    v.get(field)?.as_i64()
}

fn parse_date(
    operation: &'static str,
    v: &Value,
    field: &str,
) -> Result<Option<DateTime>, OpsError> {
    match v.get(field).and_then(Value::as_str) {
        None => Ok(None),
        Some(s) => DateTime::from_str(s, DateTimeFormat::DateTime)
            .map(Some)
            .map_err(|e| invalid(operation, &e)),
    }
}

pub fn cors_from_json(operation: &'static str, v: &Value) -> Result<CorsRule, OpsError> {
    CorsRule::builder()
        .set_id(string(v, "ID"))
        .set_allowed_origins(strings(v, "AllowedOrigins"))
        .set_allowed_methods(strings(v, "AllowedMethods"))
        .set_allowed_headers(strings(v, "AllowedHeaders"))
        .set_expose_headers(strings(v, "ExposeHeaders"))
        .set_max_age_seconds(int(v, "MaxAgeSeconds"))
        .build()
        .map_err(|e| invalid(operation, &e))
}

fn and_json(a: &LifecycleRuleAndOperator) -> Value {
    let mut m = Map::new();
    put(&mut m, "Prefix", a.prefix().map(|s| json!(s)));
    put(
        &mut m,
        "Tags",
        a.tags
            .as_ref()
            .map(|t| Value::Array(t.iter().map(tag_json).collect())),
    );
    put(
        &mut m,
        "ObjectSizeGreaterThan",
        a.object_size_greater_than().map(|n| json!(n)),
    );
    put(
        &mut m,
        "ObjectSizeLessThan",
        a.object_size_less_than().map(|n| json!(n)),
    );
    Value::Object(m)
}

fn filter_json(f: &LifecycleRuleFilter) -> Value {
    let mut m = Map::new();
    put(&mut m, "Prefix", f.prefix().map(|s| json!(s)));
    put(&mut m, "Tag", f.tag().map(tag_json));
    put(
        &mut m,
        "ObjectSizeGreaterThan",
        f.object_size_greater_than().map(|n| json!(n)),
    );
    put(
        &mut m,
        "ObjectSizeLessThan",
        f.object_size_less_than().map(|n| json!(n)),
    );
    put(&mut m, "And", f.and().map(and_json));
    Value::Object(m)
}

// Stores (Ceph radosgw among them) still answer with the legacy top-level `Prefix`; keeping
// it keeps their rules intact through a merge.
#[allow(deprecated)]
pub fn lifecycle_to_json(r: &LifecycleRule) -> Value {
    let mut m = Map::new();
    put(&mut m, "ID", r.id().map(|s| json!(s)));
    put(&mut m, "Status", Some(json!(r.status().as_str())));
    put(&mut m, "Prefix", r.prefix().map(|s| json!(s)));
    put(&mut m, "Filter", r.filter().map(filter_json));
    put(&mut m, "Expiration", r.expiration().map(expiration_json));
    put(
        &mut m,
        "Transitions",
        r.transitions
            .as_ref()
            .map(|ts| ts.iter().map(transition_json).collect()),
    );
    put(
        &mut m,
        "NoncurrentVersionTransitions",
        r.noncurrent_version_transitions
            .as_ref()
            .map(|ts| ts.iter().map(noncurrent_transition_json).collect()),
    );
    put(
        &mut m,
        "NoncurrentVersionExpiration",
        r.noncurrent_version_expiration()
            .map(noncurrent_expiration_json),
    );
    put(
        &mut m,
        "AbortIncompleteMultipartUpload",
        r.abort_incomplete_multipart_upload()
            .map(|a| json!({"DaysAfterInitiation": a.days_after_initiation()})),
    );
    Value::Object(m)
}

fn expiration_json(e: &LifecycleExpiration) -> Value {
    let mut x = Map::new();
    put(&mut x, "Date", date(e.date()));
    put(&mut x, "Days", e.days().map(|d| json!(d)));
    put(
        &mut x,
        "ExpiredObjectDeleteMarker",
        e.expired_object_delete_marker().map(|b| json!(b)),
    );
    Value::Object(x)
}

fn transition_json(t: &Transition) -> Value {
    let mut x = Map::new();
    put(&mut x, "Date", date(t.date()));
    put(&mut x, "Days", t.days().map(|d| json!(d)));
    put(
        &mut x,
        "StorageClass",
        t.storage_class().map(|c| json!(c.as_str())),
    );
    Value::Object(x)
}

fn noncurrent_transition_json(t: &NoncurrentVersionTransition) -> Value {
    let mut x = Map::new();
    put(
        &mut x,
        "NoncurrentDays",
        t.noncurrent_days().map(|d| json!(d)),
    );
    put(
        &mut x,
        "StorageClass",
        t.storage_class().map(|c| json!(c.as_str())),
    );
    put(
        &mut x,
        "NewerNoncurrentVersions",
        t.newer_noncurrent_versions().map(|d| json!(d)),
    );
    Value::Object(x)
}

fn noncurrent_expiration_json(e: &NoncurrentVersionExpiration) -> Value {
    let mut x = Map::new();
    put(
        &mut x,
        "NoncurrentDays",
        e.noncurrent_days().map(|d| json!(d)),
    );
    put(
        &mut x,
        "NewerNoncurrentVersions",
        e.newer_noncurrent_versions().map(|d| json!(d)),
    );
    Value::Object(x)
}

fn tag_from_json(operation: &'static str, v: &Value) -> Result<Tag, OpsError> {
    Tag::builder()
        .set_key(string(v, "Key"))
        .set_value(string(v, "Value"))
        .build()
        .map_err(|e| invalid(operation, &e))
}

fn filter_from_json(operation: &'static str, v: &Value) -> Result<LifecycleRuleFilter, OpsError> {
    let tag = v
        .get("Tag")
        .map(|t| tag_from_json(operation, t))
        .transpose()?;
    let and = match v.get("And") {
        None => None,
        Some(a) => {
            let tags = match a.get("Tags").and_then(Value::as_array) {
                None => None,
                Some(ts) => Some(
                    ts.iter()
                        .map(|t| tag_from_json(operation, t))
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            };
            Some(
                LifecycleRuleAndOperator::builder()
                    .set_prefix(string(a, "Prefix"))
                    .set_tags(tags)
                    .set_object_size_greater_than(long(a, "ObjectSizeGreaterThan"))
                    .set_object_size_less_than(long(a, "ObjectSizeLessThan"))
                    .build(),
            )
        }
    };
    Ok(LifecycleRuleFilter::builder()
        .set_prefix(string(v, "Prefix"))
        .set_tag(tag)
        .set_object_size_greater_than(long(v, "ObjectSizeGreaterThan"))
        .set_object_size_less_than(long(v, "ObjectSizeLessThan"))
        .set_and(and)
        .build())
}

#[allow(deprecated)] // the legacy `Prefix`, as in `lifecycle_to_json`
pub fn lifecycle_from_json(operation: &'static str, v: &Value) -> Result<LifecycleRule, OpsError> {
    let expiration = match v.get("Expiration") {
        None => None,
        Some(e) => Some(
            LifecycleExpiration::builder()
                .set_date(parse_date(operation, e, "Date")?)
                .set_days(int(e, "Days"))
                .set_expired_object_delete_marker(
                    e.get("ExpiredObjectDeleteMarker").and_then(Value::as_bool),
                )
                .build(),
        ),
    };
    let transitions = match v.get("Transitions").and_then(Value::as_array) {
        None => None,
        Some(ts) => Some(
            ts.iter()
                .map(|t| {
                    Ok(Transition::builder()
                        .set_date(parse_date(operation, t, "Date")?)
                        .set_days(int(t, "Days"))
                        .set_storage_class(
                            string(t, "StorageClass")
                                .map(|c| TransitionStorageClass::from(c.as_str())),
                        )
                        .build())
                })
                .collect::<Result<Vec<_>, OpsError>>()?,
        ),
    };
    let noncurrent_transitions = v
        .get("NoncurrentVersionTransitions")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    NoncurrentVersionTransition::builder()
                        .set_noncurrent_days(int(t, "NoncurrentDays"))
                        .set_storage_class(
                            string(t, "StorageClass")
                                .map(|c| TransitionStorageClass::from(c.as_str())),
                        )
                        .set_newer_noncurrent_versions(int(t, "NewerNoncurrentVersions"))
                        .build()
                })
                .collect()
        });
    let noncurrent_expiration = v.get("NoncurrentVersionExpiration").map(|e| {
        NoncurrentVersionExpiration::builder()
            .set_noncurrent_days(int(e, "NoncurrentDays"))
            .set_newer_noncurrent_versions(int(e, "NewerNoncurrentVersions"))
            .build()
    });
    let abort = v.get("AbortIncompleteMultipartUpload").map(|a| {
        AbortIncompleteMultipartUpload::builder()
            .set_days_after_initiation(int(a, "DaysAfterInitiation"))
            .build()
    });
    let filter = v
        .get("Filter")
        .map(|f| filter_from_json(operation, f))
        .transpose()?;
    LifecycleRule::builder()
        .set_id(string(v, "ID"))
        .status(ExpirationStatus::from(
            v.get("Status").and_then(Value::as_str).unwrap_or("Enabled"),
        ))
        .set_prefix(string(v, "Prefix"))
        .set_filter(filter)
        .set_expiration(expiration)
        .set_transitions(transitions)
        .set_noncurrent_version_transitions(noncurrent_transitions)
        .set_noncurrent_version_expiration(noncurrent_expiration)
        .set_abort_incomplete_multipart_upload(abort)
        .build()
        .map_err(|e| invalid(operation, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_field_survives_a_round_trip() {
        let cors = json!({"ID": "a", "AllowedOrigins": ["https://x"], "AllowedMethods": ["GET"],
            "AllowedHeaders": ["*"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 60});
        assert_eq!(cors_to_json(&cors_from_json("t", &cors).unwrap()), cors);
        let minimal = json!({"AllowedOrigins": ["*"], "AllowedMethods": ["PUT"]});
        assert_eq!(
            cors_to_json(&cors_from_json("t", &minimal).unwrap()),
            minimal
        );
        for rule in [
            json!({"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"},
                "Expiration": {"Days": 30}}),
            json!({"ID": "old", "Status": "Disabled", "Prefix": "tmp/",
                "Expiration": {"Date": "2030-01-01T00:00:00Z"},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}}),
            json!({"ID": "cold", "Status": "Enabled",
                "Filter": {"And": {"Prefix": "a/", "Tags": [{"Key": "k", "Value": "v"}],
                    "ObjectSizeGreaterThan": 10, "ObjectSizeLessThan": 1000}},
                "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}],
                "NoncurrentVersionTransitions": [{"NoncurrentDays": 5, "StorageClass": "GLACIER",
                    "NewerNoncurrentVersions": 2}],
                "NoncurrentVersionExpiration": {"NoncurrentDays": 9, "NewerNoncurrentVersions": 1}}),
            json!({"ID": "tag", "Status": "Enabled", "Filter": {"Tag": {"Key": "k", "Value": "v"}},
                "Expiration": {"ExpiredObjectDeleteMarker": true}}),
        ] {
            let sdk = lifecycle_from_json("t", &rule).unwrap();
            assert_eq!(lifecycle_to_json(&sdk), rule);
        }
    }
}
