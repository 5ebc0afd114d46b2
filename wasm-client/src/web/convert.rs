//! Conversions at the JS edge: reading option objects, and building the objects and errors that
//! JS callers receive. Wrong option types are reported as `invalid_options` naming the option,
//! not as a generic exception from deep inside the module.

use std::collections::BTreeMap;

use js_sys::{Function, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use super::signer::js_text;
use crate::engine::error::{Decimal, Quoted};
use crate::engine::{Error, Progress, UploadResult};

/// An options object passed from JS (`undefined` and `null` are an empty one).
pub(crate) struct JsOptions<'a> {
    value: Option<&'a JsValue>,
    /// How the object is named in messages: `options`, `upload options`.
    what: &'static str,
}

/// The path within a chosen folder of the file an upload sends: `relativePath` of its options,
/// else the `webkitRelativePath` a folder picker or a dropped folder gave the `File` (its last
/// segment replaced by `filename`, when the options rename the file); `None` for a file chosen
/// on its own (or a stream).
pub(crate) fn relative_path(
    o: &JsOptions<'_>,
    input: &JsValue,
    filename: &str,
) -> Result<Option<String>, Error> {
    if let Some(path) = o.string("relativePath")? {
        return Ok(Some(path).filter(|p| !p.is_empty()));
    }
    let given = js_sys::Reflect::get(input, &"webkitRelativePath".into())
        .ok()
        .and_then(|v| v.as_string())
        .filter(|p| !p.is_empty());
    Ok(given.map(|path| match path.rsplit_once('/') {
        Some((folders, _)) => format!("{folders}/{filename}"),
        None => filename.to_owned(),
    }))
}

impl<'a> JsOptions<'a> {
    pub(crate) fn new(value: &'a JsValue, what: &'static str) -> Result<Self, Error> {
        if value.is_undefined() || value.is_null() {
            return Ok(Self { value: None, what });
        }
        if !value.is_object() {
            return Err(Error::InvalidOptions(format!(
                "{what} must be an object, got {}",
                type_name(value)
            )));
        }
        Ok(Self {
            value: Some(value),
            what,
        })
    }

    /// The field `name`, unless absent, `undefined` or `null`.
    fn get(&self, name: &str) -> Result<Option<JsValue>, Error> {
        let Some(object) = self.value else {
            return Ok(None);
        };
        let v = Reflect::get(object, &JsValue::from_str(name)).map_err(|e| {
            Error::InvalidOptions(format!(
                "{}.{name} cannot be read: {}",
                self.what,
                js_text(&e)
            ))
        })?;
        Ok((!v.is_undefined() && !v.is_null()).then_some(v))
    }

    fn wrong(&self, name: &str, expected: &str, got: &JsValue) -> Error {
        Error::InvalidOptions(format!(
            "{}.{name} must be {expected}, got {}",
            self.what,
            type_name(got)
        ))
    }

    pub(crate) fn string(&self, name: &str) -> Result<Option<String>, Error> {
        match self.get(name)? {
            None => Ok(None),
            Some(v) => v
                .as_string()
                .map(Some)
                .ok_or_else(|| self.wrong(name, "a string", &v)),
        }
    }

    /// A number of milliseconds (finite, at least 0).
    pub(crate) fn millis(&self, name: &str) -> Result<Option<f64>, Error> {
        match self.get(name)? {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(n) if n.is_finite() && n >= 0.0 => Ok(Some(n)),
                Some(n) => Err(Error::InvalidOptions(format!(
                    "{}.{name} must be a number of milliseconds >= 0, got {}",
                    self.what,
                    Decimal(n)
                ))),
                None => Err(self.wrong(name, "a number", &v)),
            },
        }
    }

    /// A whole number of at least 0 (limits are checked by the engine, which names them).
    pub(crate) fn whole_number(&self, name: &str) -> Result<Option<u64>, Error> {
        match self.get(name)? {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                // 2^53: larger doubles are no longer whole numbers one can count on.
                Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_992.0 => {
                    Ok(Some(n as u64))
                }
                Some(n) => Err(Error::InvalidOptions(format!(
                    "{}.{name} must be a whole number >= 0, got {}",
                    self.what,
                    Decimal(n)
                ))),
                None => Err(self.wrong(name, "a number", &v)),
            },
        }
    }

    pub(crate) fn boolean(&self, name: &str) -> Result<Option<bool>, Error> {
        match self.get(name)? {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.wrong(name, "a boolean", &v)),
        }
    }

    pub(crate) fn function(&self, name: &str) -> Result<Option<Function>, Error> {
        match self.get(name)? {
            None => Ok(None),
            Some(v) => v
                .dyn_into::<Function>()
                .map(Some)
                .map_err(|v| self.wrong(name, "a function", &v)),
        }
    }

    pub(crate) fn instance<T: JsCast>(&self, name: &str, class: &str) -> Result<Option<T>, Error> {
        match self.get(name)? {
            None => Ok(None),
            Some(v) => v
                .dyn_into::<T>()
                .map(Some)
                .map_err(|v| self.wrong(name, &format!("an {class}"), &v)),
        }
    }

    /// A `Record<string, string>`.
    pub(crate) fn string_map(&self, name: &str) -> Result<BTreeMap<String, String>, Error> {
        let Some(v) = self.get(name)? else {
            return Ok(BTreeMap::new());
        };
        let Some(object) = v
            .dyn_ref::<Object>()
            .filter(|_| !js_sys::Array::is_array(&v))
        else {
            return Err(self.wrong(name, "an object of strings", &v));
        };
        let mut map = BTreeMap::new();
        for entry in Object::entries(object) {
            // `Object.entries` yields [key, value] pairs with string keys.
            let pair: js_sys::Array = entry.unchecked_into();
            let key = pair.get(0).as_string().unwrap_or_default();
            let value = pair.get(1);
            let Some(value) = value.as_string() else {
                return Err(Error::InvalidOptions(format!(
                    "{}.{name}[{}] must be a string, got {}",
                    self.what,
                    Quoted(&key),
                    type_name(&value)
                )));
            };
            map.insert(key, value);
        }
        Ok(map)
    }
}

fn type_name(v: &JsValue) -> String {
    if v.is_null() {
        "null".into()
    } else if js_sys::Array::is_array(v) {
        "an array".into()
    } else {
        v.js_typeof().as_string().unwrap_or_default()
    }
}

/// Sets `name` on a fresh JS object; setting a plain property on one cannot fail.
fn set(object: &Object, name: &str, value: impl Into<JsValue>) {
    let _ = Reflect::set(object, &JsValue::from_str(name), &value.into());
}

/// `UploadProgress` for JS. Byte counts become numbers: exact up to 8 PiB, beyond S3's 5 TiB.
pub(crate) fn progress_to_js(p: &Progress) -> JsValue {
    let o = Object::new();
    set(&o, "bytesSent", p.bytes_sent as f64);
    set(&o, "bytesConfirmed", p.bytes_confirmed as f64);
    let total = p
        .bytes_total
        .map_or(JsValue::NULL, |t| JsValue::from_f64(t as f64));
    set(&o, "bytesTotal", total);
    set(&o, "partsDone", p.parts_done);
    set(
        &o,
        "partsTotal",
        p.parts_total.map_or(JsValue::NULL, JsValue::from),
    );
    set(&o, "speed", p.speed);
    set(&o, "eta", p.eta.map_or(JsValue::NULL, JsValue::from_f64));
    set(&o, "phase", p.phase.as_str());
    o.into()
}

/// `UploadResult` for JS.
pub(crate) fn result_to_js(r: &UploadResult) -> JsValue {
    let o = Object::new();
    set(&o, "key", r.key.as_str());
    set(&o, "bucket", r.bucket.as_str());
    set(&o, "location", r.location.as_str());
    set(&o, "etag", r.etag.as_str());
    set(&o, "size", r.size as f64);
    set(
        &o,
        "checksum",
        r.checksum
            .as_deref()
            .map_or(JsValue::NULL, JsValue::from_str),
    );
    for (name, value) in [
        ("crc32c", &r.whole_file.crc32c),
        ("crc32", &r.whole_file.crc32),
    ] {
        set(
            &o,
            name,
            value.as_deref().map_or(JsValue::NULL, JsValue::from_str),
        );
    }
    set(
        &o,
        "receipt",
        r.receipt
            .as_deref()
            .map_or(JsValue::NULL, JsValue::from_str),
    );
    o.into()
}

/// The crate's error as a JS `Error` named `S3DirectError`, with `code`, and `status` and `part`
/// when known.
pub(crate) fn error_to_js(e: &Error) -> JsValue {
    let error = js_sys::Error::new(&e.to_string());
    error.set_name("S3DirectError");
    set(&error, "code", e.code());
    if let Some(status) = e.status() {
        set(&error, "status", status);
    }
    if let Some(part) = e.part() {
        set(&error, "part", part);
    }
    error.into()
}
