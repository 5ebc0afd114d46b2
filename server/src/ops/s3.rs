//! [`MultipartAdmin`] and [`BucketRules`] over aws-sdk-s3: the operator commands against a real
//! store.

use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{BucketLifecycleConfiguration, CorsConfiguration};
use serde_json::Value;

use super::setup::BucketRules;

use super::uploads::{
    Aborted, MultipartAdmin, OpsError, PartPage, PendingUpload, UploadMarker, UploadPage,
};
use crate::S3Store;

#[async_trait]
impl MultipartAdmin for S3Store {
    fn bucket(&self) -> &str {
        &self.config().bucket
    }

    async fn list_uploads_page(
        &self,
        prefix: Option<&str>,
        marker: Option<&UploadMarker>,
    ) -> Result<UploadPage, OpsError> {
        const OP: &str = "ListMultipartUploads";
        let out = self
            .client()
            .list_multipart_uploads()
            .bucket(&self.config().bucket)
            .max_uploads(1000)
            .set_prefix(prefix.map(str::to_owned))
            .set_key_marker(marker.map(|m| m.key.clone()))
            .set_upload_id_marker(marker.map(|m| m.upload_id.clone()))
            .send()
            .await
            .map_err(|e| classify(OP, e, None))?;
        let uploads = out
            .uploads()
            .iter()
            .filter_map(|u| {
                Some(PendingUpload {
                    key: u.key()?.to_owned(),
                    upload_id: u.upload_id()?.to_owned(),
                    initiated: u.initiated().and_then(|t| SystemTime::try_from(*t).ok()),
                })
            })
            .collect::<Vec<_>>();
        let next = if out.is_truncated() == Some(true) {
            // Stores that leave the next markers out mean "continue after the last entry".
            let last = uploads.last();
            let key = out
                .next_key_marker()
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .or_else(|| last.map(|u| u.key.clone()));
            let upload_id = out
                .next_upload_id_marker()
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .or_else(|| last.map(|u| u.upload_id.clone()));
            match (key, upload_id) {
                (Some(key), Some(upload_id)) => Some(UploadMarker { key, upload_id }),
                _ => {
                    return Err(OpsError::Store {
                        operation: OP,
                        detail: "the listing is truncated but names no next marker".to_owned(),
                    });
                }
            }
        } else {
            None
        };
        Ok(UploadPage { uploads, next })
    }

    async fn list_parts_page(
        &self,
        key: &str,
        upload_id: &str,
        marker: Option<&str>,
    ) -> Result<PartPage, OpsError> {
        const OP: &str = "ListParts";
        let out = self
            .client()
            .list_parts()
            .bucket(&self.config().bucket)
            .key(key)
            .upload_id(upload_id)
            .max_parts(1000)
            .set_part_number_marker(marker.map(str::to_owned))
            .send()
            .await
            .map_err(|e| classify(OP, e, Some((key, upload_id))))?;
        let sizes = out
            .parts()
            .iter()
            .map(|p| p.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
            .collect::<Vec<_>>();
        let next = if out.is_truncated() == Some(true) {
            let from_parts = out
                .parts()
                .last()
                .and_then(|p| p.part_number())
                .map(|n| n.to_string());
            Some(
                out.next_part_number_marker()
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .or(from_parts)
                    .ok_or_else(|| OpsError::Store {
                        operation: OP,
                        detail: "the listing is truncated but names no next marker".to_owned(),
                    })?,
            )
        } else {
            None
        };
        Ok(PartPage { sizes, next })
    }

    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<Aborted, OpsError> {
        const OP: &str = "AbortMultipartUpload";
        match self
            .client()
            .abort_multipart_upload()
            .bucket(&self.config().bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| classify(OP, e, Some((key, upload_id))))
        {
            Ok(_) => Ok(Aborted::Now),
            Err(OpsError::NoSuchUpload { .. }) => Ok(Aborted::AlreadyGone),
            Err(e) => Err(e),
        }
    }
}

/// Maps an SDK failure to what the command can report.
fn classify<E>(operation: &'static str, err: SdkError<E>, upload: Option<(&str, &str)>) -> OpsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match (err.code(), upload) {
        (Some("NoSuchUpload"), Some((key, upload_id))) => OpsError::NoSuchUpload {
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
        },
        (Some("NotImplemented"), _) => OpsError::Unsupported { operation },
        (None, _) if status == Some(501) => OpsError::Unsupported { operation },
        (Some("NoSuchBucket"), _) => OpsError::Store {
            operation,
            detail: "the bucket does not exist; check --bucket".to_owned(),
        },
        (Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch"), _) => {
            OpsError::Store {
                operation,
                detail: format!(
                    "the store refused the credentials ({}); check AWS_ACCESS_KEY_ID / \
                     AWS_SECRET_ACCESS_KEY (or the profile) and that --region is the store's region",
                    err.code().unwrap_or_default()
                ),
            }
        }
        _ => OpsError::Store {
            operation,
            detail: DisplayErrorContext(&err).to_string(),
        },
    }
}

/// The bucket's CORS and lifecycle rules through aws-sdk-s3, converted to and from the JSON
/// shape of `aws s3api` (every field the S3 API defines for these rules, so rules of other
/// tools survive a merge unchanged).
#[async_trait]
impl BucketRules for S3Store {
    fn bucket(&self) -> &str {
        &self.config().bucket
    }

    fn endpoint(&self) -> &str {
        &self.config().endpoint
    }

    async fn cors_rules(&self) -> Result<Vec<Value>, OpsError> {
        const OP: &str = "GetBucketCors";
        match self
            .client()
            .get_bucket_cors()
            .bucket(&self.config().bucket)
            .send()
            .await
        {
            Ok(out) => Ok(out.cors_rules().iter().map(rules::cors_to_json).collect()),
            Err(e) if e.code() == Some("NoSuchCORSConfiguration") => Ok(Vec::new()),
            Err(e) => Err(classify(OP, e, None)),
        }
    }

    async fn put_cors_rules(&self, rules: &[Value]) -> Result<(), OpsError> {
        const OP: &str = "PutBucketCors";
        let rules = rules
            .iter()
            .map(|r| rules::cors_from_json(OP, r))
            .collect::<Result<Vec<_>, _>>()?;
        let config = CorsConfiguration::builder()
            .set_cors_rules(Some(rules))
            .build()
            .map_err(|e| rules::invalid(OP, &e))?;
        self.client()
            .put_bucket_cors()
            .bucket(&self.config().bucket)
            .cors_configuration(config)
            .send()
            .await
            .map_err(|e| classify(OP, e, None))?;
        Ok(())
    }

    async fn lifecycle_rules(&self) -> Result<Vec<Value>, OpsError> {
        const OP: &str = "GetBucketLifecycleConfiguration";
        match self
            .client()
            .get_bucket_lifecycle_configuration()
            .bucket(&self.config().bucket)
            .send()
            .await
        {
            Ok(out) => Ok(out.rules().iter().map(rules::lifecycle_to_json).collect()),
            Err(e) if e.code() == Some("NoSuchLifecycleConfiguration") => Ok(Vec::new()),
            Err(e) => Err(classify(OP, e, None)),
        }
    }

    async fn put_lifecycle_rules(&self, rules: &[Value]) -> Result<(), OpsError> {
        const OP: &str = "PutBucketLifecycleConfiguration";
        let rules = rules
            .iter()
            .map(|r| rules::lifecycle_from_json(OP, r))
            .collect::<Result<Vec<_>, _>>()?;
        let config = BucketLifecycleConfiguration::builder()
            .set_rules(Some(rules))
            .build()
            .map_err(|e| rules::invalid(OP, &e))?;
        self.client()
            .put_bucket_lifecycle_configuration()
            .bucket(&self.config().bucket)
            .lifecycle_configuration(config)
            .send()
            .await
            .map_err(|e| classify(OP, e, None))?;
        Ok(())
    }
}

/// Conversions between the SDK's rule types and `aws s3api` JSON.
mod rules {
    use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
    use aws_sdk_s3::types::{
        AbortIncompleteMultipartUpload, CorsRule, ExpirationStatus, LifecycleExpiration,
        LifecycleRule, LifecycleRuleAndOperator, LifecycleRuleFilter, NoncurrentVersionExpiration,
        NoncurrentVersionTransition, Tag, Transition, TransitionStorageClass,
    };
    use serde_json::{Map, Value, json};

    use super::OpsError;

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
        put(
            &mut m,
            "Expiration",
            r.expiration().map(|e| {
                let mut x = Map::new();
                put(&mut x, "Date", date(e.date()));
                put(&mut x, "Days", e.days().map(|d| json!(d)));
                put(
                    &mut x,
                    "ExpiredObjectDeleteMarker",
                    e.expired_object_delete_marker().map(|b| json!(b)),
                );
                Value::Object(x)
            }),
        );
        put(
            &mut m,
            "Transitions",
            r.transitions.as_ref().map(|ts| {
                Value::Array(
                    ts.iter()
                        .map(|t| {
                            let mut x = Map::new();
                            put(&mut x, "Date", date(t.date()));
                            put(&mut x, "Days", t.days().map(|d| json!(d)));
                            put(
                                &mut x,
                                "StorageClass",
                                t.storage_class().map(|c| json!(c.as_str())),
                            );
                            Value::Object(x)
                        })
                        .collect(),
                )
            }),
        );
        put(
            &mut m,
            "NoncurrentVersionTransitions",
            r.noncurrent_version_transitions.as_ref().map(|ts| {
                Value::Array(
                    ts.iter()
                        .map(|t| {
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
                        })
                        .collect(),
                )
            }),
        );
        put(
            &mut m,
            "NoncurrentVersionExpiration",
            r.noncurrent_version_expiration().map(|e| {
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
            }),
        );
        put(
            &mut m,
            "AbortIncompleteMultipartUpload",
            r.abort_incomplete_multipart_upload()
                .map(|a| json!({"DaysAfterInitiation": a.days_after_initiation()})),
        );
        Value::Object(m)
    }

    fn tag_from_json(operation: &'static str, v: &Value) -> Result<Tag, OpsError> {
        Tag::builder()
            .set_key(string(v, "Key"))
            .set_value(string(v, "Value"))
            .build()
            .map_err(|e| invalid(operation, &e))
    }

    fn filter_from_json(
        operation: &'static str,
        v: &Value,
    ) -> Result<LifecycleRuleFilter, OpsError> {
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
    pub fn lifecycle_from_json(
        operation: &'static str,
        v: &Value,
    ) -> Result<LifecycleRule, OpsError> {
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
}
