//! protobuf's JSON mapping straight to and from a message's binary encoding, for Connect
//! JSON calls: [`to_json`] writes an answer, [`from_json`] reads a request body.
//!
//! A Connect call goes through the gRPC routes in process (`connect.rs`), so its messages
//! are binary on both sides of the JSON. prost-reflect converts by way of a
//! `DynamicMessage` (a map of boxed values, a copy of every string; a `Timestamp` encoded
//! and decoded once more to be written): that was about 45% of a Connect JSON Fetch's
//! server instructions (callgrind, issue 14). Here the wire bytes are walked once with the
//! method's descriptor and the JSON written as they go, and a JSON body is read by serde
//! straight into wire bytes.
//!
//! Writing gives the same output as prost-reflect for what it handles: lowerCamelCase
//! names, enums by name (an unknown number as the number), 64-bit integers as strings,
//! bytes as base64, `NaN`/`Infinity` as strings, default values of fields without presence
//! omitted, `Timestamp` as RFC 3339 with the fraction `prost_types` writes, unknown fields
//! skipped. Maps, groups, a field that occurs twice apart from a repeated run, a well-known
//! type other than `Timestamp` and `Empty`, a member of a oneof (prost-reflect keeps the
//! last one it reads), an extended type, nesting past [`MAX_DEPTH`] and a malformed
//! message answer `None`.
//!
//! Reading takes the plain cases only (see [`from_json`]) and answers `None` for the rest.
//!
//! On `None` the caller converts with prost-reflect, which stays the reference (and words
//! every error): the tests compare both, on every message type the service reads and
//! answers, on random and on damaged input.

use std::borrow::Cow;
use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::io::Write as _;
use std::rc::Rc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use prost::bytes::Buf as _;
use prost::encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint};
use prost_reflect::{EnumDescriptor, Kind, MessageDescriptor};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Deepest nesting written here; deeper messages go to prost-reflect.
const MAX_DEPTH: usize = 32;
/// Field numbers this writer tracks (a bit each); a message with a larger one falls back.
const MAX_FIELD: u32 = 127;
/// Seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range the mapping allows.
const TIMESTAMP_SECONDS: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;

/// `wire`, a binary message of type `descriptor`, in protobuf's JSON mapping, or `None`
/// when it holds something this writer leaves to prost-reflect (see the module's comment).
pub(crate) fn to_json(descriptor: &MessageDescriptor, wire: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(64 + wire.len() * 2);
    message(&plan_of(descriptor), wire, &mut out, 0)?;
    Some(out)
}

/// What the writer needs of a message type, worked out once per type and thread.
struct Plan {
    shape: Shape,
    /// Whether the type declares a field past [`MAX_FIELD`] (left to prost-reflect).
    beyond: bool,
    /// Whether the type is extended: a number it does not declare may be an extension,
    /// which prost-reflect writes.
    extended: bool,
}

enum Shape {
    /// A message written field by field: its fields by number (up to [`MAX_FIELD`]).
    Fields(Vec<Option<FieldPlan>>),
    /// `google.protobuf.Timestamp`, written as its RFC 3339 string.
    Timestamp,
    /// A well-known type with a JSON form of its own (other than `Empty`): prost-reflect's.
    Unsupported,
}

/// One field: its key as written (`"jsonName":`, escaped), kind and cardinality.
struct FieldPlan {
    key: Box<[u8]>,
    kind: Kind,
    list: bool,
    presence: bool,
    /// Maps, groups and members of a oneof are left to prost-reflect.
    supported: bool,
    /// The plan of a message field's type, found on first use.
    nested: OnceCell<Rc<Plan>>,
}

impl FieldPlan {
    /// Whether a default value of this field is left out of the binary form, as prost
    /// leaves it out: a singular field without presence.
    fn omits_default(&self) -> bool {
        !self.list && !self.presence
    }

    /// The plan of this message field's type.
    fn nested(&self, inner: &MessageDescriptor) -> &Plan {
        self.nested.get_or_init(|| plan_of(inner))
    }
}

impl Plan {
    fn new(descriptor: &MessageDescriptor) -> Plan {
        let name = descriptor.full_name();
        let beyond = descriptor.fields().any(|f| f.number() > MAX_FIELD);
        let extended = descriptor.extensions().len() > 0;
        let shape = if name == "google.protobuf.Timestamp" {
            Shape::Timestamp
        } else if name.starts_with("google.protobuf.") && name != "google.protobuf.Empty" {
            Shape::Unsupported
        } else {
            let mut fields: Vec<Option<FieldPlan>> = Vec::new();
            for field in descriptor.fields() {
                let Some(number) = usize::try_from(field.number())
                    .ok()
                    .filter(|n| *n <= MAX_FIELD as usize)
                else {
                    continue;
                };
                if fields.len() <= number {
                    fields.resize_with(number + 1, || None);
                }
                let mut key = Vec::with_capacity(field.json_name().len() + 3);
                json(field.json_name(), &mut key);
                key.push(b':');
                fields[number] = Some(FieldPlan {
                    key: key.into_boxed_slice(),
                    kind: field.kind(),
                    list: field.is_list(),
                    presence: field.supports_presence(),
                    // prost-reflect keeps only the last member of a oneof it reads.
                    supported: !(field.is_map()
                        || field.is_group()
                        || field
                            .containing_oneof()
                            .is_some_and(|oneof| !oneof.is_synthetic())),
                    nested: OnceCell::new(),
                });
            }
            Shape::Fields(fields)
        };
        Plan {
            shape,
            beyond,
            extended,
        }
    }
}

/// Plans by message name, then by descriptor (one name in two pools is two types).
type Plans = HashMap<String, Vec<(MessageDescriptor, Rc<Plan>)>>;

thread_local! {
    /// Plans by message type. Bounded by the types of the pools written from (the
    /// service's descriptors): a few dozen.
    static PLANS: RefCell<Plans> = RefCell::default();
}

/// The plan of `descriptor`, made on first use on this thread.
fn plan_of(descriptor: &MessageDescriptor) -> Rc<Plan> {
    PLANS.with(|plans| {
        // By name, then by descriptor (its pool and index): one name in two pools (as in
        // the tests) is two types.
        let found = plans
            .borrow()
            .get(descriptor.full_name())
            .and_then(|same_name| {
                same_name
                    .iter()
                    .find(|(known, _)| known == descriptor)
                    .map(|(_, plan)| plan.clone())
            });
        found.unwrap_or_else(|| {
            let plan = Rc::new(Plan::new(descriptor));
            plans
                .borrow_mut()
                .entry(descriptor.full_name().to_owned())
                .or_default()
                .push((descriptor.clone(), plan.clone()));
            plan
        })
    })
}

fn message(plan: &Plan, mut wire: &[u8], out: &mut Vec<u8>, depth: usize) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    let fields = match &plan.shape {
        Shape::Fields(fields) => fields,
        Shape::Timestamp => return timestamp(wire, out),
        Shape::Unsupported => return None,
    };
    out.push(b'{');
    let mut written = false;
    // Fields already written, by number; the repeated field whose array is open.
    let mut seen: u128 = 0;
    let mut open: Option<u32> = None;
    while !wire.is_empty() {
        let (number, wire_type) = decode_key(&mut wire).ok()?;
        let Some(field) = usize::try_from(number)
            .ok()
            .and_then(|n| fields.get(n))
            .and_then(Option::as_ref)
        else {
            // A number past MAX_FIELD that the message declares, or an extension, is left
            // to prost-reflect.
            if plan.extended || (plan.beyond && number > MAX_FIELD) {
                return None;
            }
            skip(wire_type, &mut wire)?;
            continue;
        };
        if !field.supported {
            return None;
        }
        let kind = &field.kind;
        if field.list {
            let packed = if wire_type == WireType::LengthDelimited && is_packable(kind) {
                let packed = length_delimited(&mut wire)?;
                if packed.is_empty() {
                    continue;
                }
                Some(packed)
            } else {
                None
            };
            if open == Some(number) {
                out.push(b',');
            } else {
                close(&mut open, out);
                first_time(&mut seen, number)?;
                key(field, &mut written, out);
                out.push(b'[');
                open = Some(number);
            }
            match packed {
                Some(mut packed) => {
                    let element = packed_wire_type(kind);
                    let mut first = true;
                    while !packed.is_empty() {
                        if !first {
                            out.push(b',');
                        }
                        first = false;
                        scalar(kind, element, &mut packed)?.write(out);
                    }
                }
                None => value(field, wire_type, &mut wire, out, depth)?,
            }
            continue;
        }
        close(&mut open, out);
        first_time(&mut seen, number)?;
        if let Kind::Message(_) = kind {
            // A message field has presence: written even when empty.
            key(field, &mut written, out);
            value(field, wire_type, &mut wire, out, depth)?;
            continue;
        }
        let value = scalar(kind, wire_type, &mut wire)?;
        if field.presence || !value.is_default() {
            key(field, &mut written, out);
            value.write(out);
        }
    }
    close(&mut open, out);
    out.push(b'}');
    Some(())
}

/// Writes one element of a repeated field.
fn value(
    field: &FieldPlan,
    wire_type: WireType,
    wire: &mut &[u8],
    out: &mut Vec<u8>,
    depth: usize,
) -> Option<()> {
    if let Kind::Message(inner) = &field.kind {
        if wire_type != WireType::LengthDelimited {
            return None;
        }
        let body = length_delimited(wire)?;
        return message(field.nested(inner), body, out, depth + 1);
    }
    scalar(&field.kind, wire_type, wire)?.write(out);
    Some(())
}

/// Marks `number` written; `None` (fall back) when it was already, or is too large to track.
fn first_time(seen: &mut u128, number: u32) -> Option<()> {
    if number > MAX_FIELD {
        return None;
    }
    let bit = 1u128 << number;
    if *seen & bit != 0 {
        return None;
    }
    *seen |= bit;
    Some(())
}

/// Closes the open array of a repeated field, if any.
fn close(open: &mut Option<u32>, out: &mut Vec<u8>) {
    if open.take().is_some() {
        out.push(b']');
    }
}

/// Writes `"jsonName":`, after a comma unless it is the message's first field.
fn key(field: &FieldPlan, written: &mut bool, out: &mut Vec<u8>) {
    if *written {
        out.push(b',');
    }
    *written = true;
    out.extend_from_slice(&field.key);
}

/// One scalar value as read from the wire.
enum Scalar<'w, 'k> {
    Bool(bool),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F32(f32),
    F64(f64),
    Str(&'w str),
    Bytes(&'w [u8]),
    Enum(i32, &'k EnumDescriptor),
}

impl Scalar<'_, '_> {
    fn is_default(&self) -> bool {
        match self {
            Scalar::Bool(v) => !v,
            Scalar::I32(v) | Scalar::Enum(v, _) => *v == 0,
            Scalar::U32(v) => *v == 0,
            Scalar::I64(v) => *v == 0,
            Scalar::U64(v) => *v == 0,
            // As prost-reflect: -0.0 is the default too.
            Scalar::F32(v) => *v == 0.0,
            Scalar::F64(v) => *v == 0.0,
            Scalar::Str(v) => v.is_empty(),
            Scalar::Bytes(v) => v.is_empty(),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Scalar::Bool(v) => json(v, out),
            Scalar::I32(v) => json(v, out),
            Scalar::U32(v) => json(v, out),
            Scalar::I64(v) => quoted(v, out),
            Scalar::U64(v) => quoted(v, out),
            Scalar::F32(v) if v.is_finite() => json(v, out),
            Scalar::F64(v) if v.is_finite() => json(v, out),
            Scalar::F32(v) => non_finite(f64::from(*v), out),
            Scalar::F64(v) => non_finite(*v, out),
            Scalar::Str(v) => json(v, out),
            Scalar::Bytes(v) => {
                out.push(b'"');
                let mut encoded = String::new();
                BASE64.encode_string(v, &mut encoded);
                out.extend_from_slice(encoded.as_bytes());
                out.push(b'"');
            }
            Scalar::Enum(number, descriptor) => match descriptor.get_value(*number) {
                Some(value) => json(value.name(), out),
                None => json(number, out),
            },
        }
    }
}

/// A value as serde_json writes it (strings escaped as prost-reflect's output is).
fn json(value: &(impl serde::Serialize + ?Sized), out: &mut Vec<u8>) {
    // Writing a string or a number to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// A 64-bit integer as a JSON string, as the mapping asks.
fn quoted(value: &impl serde::Serialize, out: &mut Vec<u8>) {
    out.push(b'"');
    json(value, out);
    out.push(b'"');
}

fn non_finite(value: f64, out: &mut Vec<u8>) {
    out.extend_from_slice(if value.is_nan() {
        b"\"NaN\""
    } else if value > 0.0 {
        b"\"Infinity\""
    } else {
        b"\"-Infinity\""
    });
}

/// Reads one scalar of `kind` sent as `wire_type`; `None` on a mismatch or a short read.
fn scalar<'w, 'k>(
    kind: &'k Kind,
    wire_type: WireType,
    wire: &mut &'w [u8],
) -> Option<Scalar<'w, 'k>> {
    Some(match (kind, wire_type) {
        (Kind::Bool, WireType::Varint) => Scalar::Bool(decode_varint(wire).ok()? != 0),
        // Truncation to 32 bits is how protobuf reads a 32-bit varint.
        (Kind::Int32, WireType::Varint) => Scalar::I32(decode_varint(wire).ok()? as i32),
        (Kind::Uint32, WireType::Varint) => Scalar::U32(decode_varint(wire).ok()? as u32),
        (Kind::Sint32, WireType::Varint) => {
            let v = decode_varint(wire).ok()? as u32;
            Scalar::I32(((v >> 1) as i32) ^ -((v & 1) as i32))
        }
        (Kind::Int64, WireType::Varint) => Scalar::I64(decode_varint(wire).ok()? as i64),
        (Kind::Uint64, WireType::Varint) => Scalar::U64(decode_varint(wire).ok()?),
        (Kind::Sint64, WireType::Varint) => {
            let v = decode_varint(wire).ok()?;
            Scalar::I64(((v >> 1) as i64) ^ -((v & 1) as i64))
        }
        (Kind::Enum(descriptor), WireType::Varint) => {
            if descriptor.full_name() == "google.protobuf.NullValue" {
                return None;
            }
            Scalar::Enum(decode_varint(wire).ok()? as i32, descriptor)
        }
        (Kind::Fixed32, WireType::ThirtyTwoBit) => Scalar::U32(fixed::<4>(wire)?.get_u32_le()),
        (Kind::Sfixed32, WireType::ThirtyTwoBit) => Scalar::I32(fixed::<4>(wire)?.get_i32_le()),
        (Kind::Float, WireType::ThirtyTwoBit) => Scalar::F32(fixed::<4>(wire)?.get_f32_le()),
        (Kind::Fixed64, WireType::SixtyFourBit) => Scalar::U64(fixed::<8>(wire)?.get_u64_le()),
        (Kind::Sfixed64, WireType::SixtyFourBit) => Scalar::I64(fixed::<8>(wire)?.get_i64_le()),
        (Kind::Double, WireType::SixtyFourBit) => Scalar::F64(fixed::<8>(wire)?.get_f64_le()),
        (Kind::String, WireType::LengthDelimited) => {
            Scalar::Str(std::str::from_utf8(length_delimited(wire)?).ok()?)
        }
        (Kind::Bytes, WireType::LengthDelimited) => Scalar::Bytes(length_delimited(wire)?),
        _ => return None,
    })
}

/// Whether a repeated field of `kind` may be sent packed.
fn is_packable(kind: &Kind) -> bool {
    !matches!(kind, Kind::String | Kind::Bytes | Kind::Message(_))
}

/// The wire type of each element of a packed field of `kind`.
fn packed_wire_type(kind: &Kind) -> WireType {
    match kind {
        Kind::Fixed32 | Kind::Sfixed32 | Kind::Float => WireType::ThirtyTwoBit,
        Kind::Fixed64 | Kind::Sfixed64 | Kind::Double => WireType::SixtyFourBit,
        _ => WireType::Varint,
    }
}

/// The next `N` bytes.
fn fixed<'a, const N: usize>(wire: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (taken, rest) = wire.split_at_checked(N)?;
    *wire = rest;
    Some(taken)
}

/// A length-delimited value's bytes.
fn length_delimited<'a>(wire: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(decode_varint(wire).ok()?).ok()?;
    let (taken, rest) = wire.split_at_checked(len)?;
    *wire = rest;
    Some(taken)
}

/// Skips an unknown field's value.
fn skip(wire_type: WireType, wire: &mut &[u8]) -> Option<()> {
    match wire_type {
        WireType::Varint => {
            decode_varint(wire).ok()?;
        }
        WireType::SixtyFourBit => {
            fixed::<8>(wire)?;
        }
        WireType::ThirtyTwoBit => {
            fixed::<4>(wire)?;
        }
        WireType::LengthDelimited => {
            length_delimited(wire)?;
        }
        WireType::StartGroup | WireType::EndGroup => return None,
    }
    Some(())
}

/// A `google.protobuf.Timestamp` as its RFC 3339 string, written as prost-reflect writes
/// it (through `prost_types::Timestamp`'s `Display`); `None` outside years 1 to 9999.
fn timestamp(mut wire: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let mut stamp = prost_types::Timestamp::default();
    while !wire.is_empty() {
        match decode_key(&mut wire).ok()? {
            (1, WireType::Varint) => stamp.seconds = decode_varint(&mut wire).ok()? as i64,
            (2, WireType::Varint) => stamp.nanos = decode_varint(&mut wire).ok()? as i32,
            (1 | 2, _) => return None,
            (_, wire_type) => skip(wire_type, &mut wire)?,
        }
    }
    if !TIMESTAMP_SECONDS.contains(&stamp.seconds) {
        return None;
    }
    match u32::try_from(stamp.nanos)
        .ok()
        .and_then(|nanos| chrono::DateTime::from_timestamp(stamp.seconds, nanos))
    {
        Some(time) if stamp.nanos < 1_000_000_000 => rfc3339(&time, out),
        // Nanos outside 0..1e9: prost_types normalizes them first.
        _ => write!(out, "\"{stamp}\"").ok()?,
    }
    Some(())
}

/// `time` as `"YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]Z"`, the digits of the fraction
/// as prost_types writes them: none, 3, 6 or 9, the fewest that hold the nanoseconds.
fn rfc3339(time: &chrono::DateTime<chrono::Utc>, out: &mut Vec<u8>) {
    use chrono::{Datelike as _, Timelike as _};
    fn digits(out: &mut Vec<u8>, value: u32, width: u32) {
        for place in (0..width).rev() {
            // One decimal digit.
            out.push(b'0' + (value / 10u32.pow(place) % 10) as u8);
        }
    }
    out.push(b'"');
    // The range check keeps the year within 1..=9999.
    digits(out, time.year().unsigned_abs(), 4);
    out.push(b'-');
    digits(out, time.month(), 2);
    out.push(b'-');
    digits(out, time.day(), 2);
    out.push(b'T');
    digits(out, time.hour(), 2);
    out.push(b':');
    digits(out, time.minute(), 2);
    out.push(b':');
    digits(out, time.second(), 2);
    let nanos = time.nanosecond();
    if nanos != 0 {
        out.push(b'.');
        if nanos.is_multiple_of(1_000_000) {
            digits(out, nanos / 1_000_000, 3);
        } else if nanos.is_multiple_of(1_000) {
            digits(out, nanos / 1_000, 6);
        } else {
            digits(out, nanos, 9);
        }
    }
    out.extend_from_slice(b"Z\"");
}

/// `body`, JSON in protobuf's JSON mapping, as the binary encoding of a message of type
/// `descriptor`, or `None` when it holds anything but the plain cases (then the caller
/// reads it with prost-reflect, which also words any error): strings, bools, integers
/// as JSON numbers, enums by a name they have, messages other than the well-known types,
/// and arrays of those, under a field's lowerCamelCase or proto name. Unknown fields are
/// skipped, as prost-reflect skips them with `deny_unknown_fields(false)`. Defaults of
/// fields without presence are left out, as prost leaves them out, so the message is as
/// large as prost-reflect's (the size limit judges it). A field given twice, `null`, a
/// member of a oneof, repeated numbers (prost-reflect packs them), a key in `Empty`, an
/// extension and everything else fall back.
pub(crate) fn from_json(descriptor: &MessageDescriptor, body: &[u8]) -> Option<Vec<u8>> {
    let mut json = serde_json::Deserializer::from_slice(body);
    let mut out = Vec::with_capacity(body.len());
    MessageSeed {
        descriptor,
        plan: &plan_of(descriptor),
        out: &mut out,
    }
    .deserialize(&mut json)
    .ok()?;
    json.end().ok()?;
    Some(out)
}

/// The error that sends a body to prost-reflect; never shown to anyone.
fn fall_back<E: serde::de::Error>() -> E {
    E::custom("left to prost-reflect")
}

/// Reads one JSON object as a message of type `descriptor`, its fields appended to `out`.
struct MessageSeed<'a> {
    descriptor: &'a MessageDescriptor,
    plan: &'a Plan,
    out: &'a mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for MessageSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MessageSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let descriptor = self.descriptor;
        let Shape::Fields(fields) = &self.plan.shape else {
            return Err(fall_back());
        };
        let mut seen: u128 = 0;
        while let Some(name) = map.next_key::<Cow<'_, str>>()? {
            // As prost-reflect looks a field up: its JSON name, then its proto name.
            let Some(field) = descriptor
                .get_field_by_json_name(&name)
                .or_else(|| descriptor.get_field_by_name(&name))
            else {
                // An extension is read by prost-reflect; `Empty` refuses any key there.
                if descriptor.get_extension_by_json_name(&name).is_some()
                    || descriptor.full_name() == "google.protobuf.Empty"
                {
                    return Err(fall_back());
                }
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let number = field.number();
            // A repeated number is left to prost-reflect too, which packs it: a message
            // read here is exactly as large as its, for the size limit.
            let Some(plan) = usize::try_from(number)
                .ok()
                .and_then(|n| fields.get(n))
                .and_then(Option::as_ref)
                .filter(|plan| plan.supported && !(plan.list && is_packable(&plan.kind)))
            else {
                return Err(fall_back());
            };
            first_time(&mut seen, number).ok_or_else(fall_back)?;
            let value = ValueSeed {
                field: plan,
                number,
                out: &mut *self.out,
            };
            if plan.list {
                map.next_value_seed(ListSeed(value))?;
            } else {
                map.next_value_seed(value)?;
            }
        }
        Ok(())
    }
}

/// Reads one value of `field` (one element, for a repeated field) and appends it, keyed.
struct ValueSeed<'a> {
    field: &'a FieldPlan,
    number: u32,
    out: &'a mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        match &self.field.kind {
            Kind::Message(inner) => {
                let mut body = Vec::new();
                MessageSeed {
                    descriptor: inner,
                    plan: self.field.nested(inner),
                    out: &mut body,
                }
                .deserialize(deserializer)?;
                encode_key(self.number, WireType::LengthDelimited, self.out);
                encode_varint(body.len() as u64, self.out);
                self.out.extend_from_slice(&body);
                Ok(())
            }
            Kind::String | Kind::Enum(_) => deserializer.deserialize_str(self),
            Kind::Bool => deserializer.deserialize_bool(self),
            kind if is_integer(kind) => deserializer.deserialize_any(self),
            _ => Err(fall_back()),
        }
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a plain value of the field's type")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<(), E> {
        let (number, out) = (self.number, self.out);
        match &self.field.kind {
            Kind::String if text.is_empty() && self.field.omits_default() => {}
            Kind::String => {
                encode_key(number, WireType::LengthDelimited, out);
                encode_varint(text.len() as u64, out);
                out.extend_from_slice(text.as_bytes());
            }
            Kind::Enum(descriptor) => {
                // A name the enum lacks reads as unset in prost-reflect; left to it.
                let value = descriptor.get_value_by_name(text).ok_or_else(fall_back)?;
                if value.number() != 0 || !self.field.omits_default() {
                    prost::encoding::int32::encode(number, &value.number(), out);
                }
            }
            _ => return Err(fall_back()),
        }
        Ok(())
    }

    fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<(), E> {
        if !matches!(self.field.kind, Kind::Bool) {
            return Err(fall_back());
        }
        if value || !self.field.omits_default() {
            prost::encoding::bool::encode(self.number, &value, self.out);
        }
        Ok(())
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<(), E> {
        self.integer(i128::from(value))
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<(), E> {
        self.integer(i128::from(value))
    }
}

impl ValueSeed<'_> {
    /// Appends an integer field holding `value` (a default one only where prost would).
    fn integer<E: serde::de::Error>(self, value: i128) -> Result<(), E> {
        let kind = &self.field.kind;
        if value == 0 && self.field.omits_default() && is_integer(kind) {
            return Ok(());
        }
        integer(kind, self.number, value, self.out)
    }
}

/// Appends an integer field of `kind` holding `value`; falls back when it is out of range.
fn integer<E: serde::de::Error>(
    kind: &Kind,
    number: u32,
    value: i128,
    out: &mut Vec<u8>,
) -> Result<(), E> {
    use prost::encoding as pb;
    fn fit<T: TryFrom<i128>, E: serde::de::Error>(value: i128) -> Result<T, E> {
        T::try_from(value).map_err(|_| fall_back())
    }
    match kind {
        Kind::Int32 => pb::int32::encode(number, &fit(value)?, out),
        Kind::Sint32 => pb::sint32::encode(number, &fit(value)?, out),
        Kind::Sfixed32 => pb::sfixed32::encode(number, &fit(value)?, out),
        Kind::Int64 => pb::int64::encode(number, &fit(value)?, out),
        Kind::Sint64 => pb::sint64::encode(number, &fit(value)?, out),
        Kind::Sfixed64 => pb::sfixed64::encode(number, &fit(value)?, out),
        Kind::Uint32 => pb::uint32::encode(number, &fit(value)?, out),
        Kind::Fixed32 => pb::fixed32::encode(number, &fit(value)?, out),
        Kind::Uint64 => pb::uint64::encode(number, &fit(value)?, out),
        Kind::Fixed64 => pb::fixed64::encode(number, &fit(value)?, out),
        _ => return Err(fall_back()),
    }
    Ok(())
}

/// Whether `kind` is one of protobuf's integer types.
fn is_integer(kind: &Kind) -> bool {
    matches!(
        kind,
        Kind::Int32
            | Kind::Sint32
            | Kind::Sfixed32
            | Kind::Int64
            | Kind::Sint64
            | Kind::Sfixed64
            | Kind::Uint32
            | Kind::Fixed32
            | Kind::Uint64
            | Kind::Fixed64
    )
}

/// Reads a JSON array of a repeated field's values, each appended as its own element.
struct ListSeed<'a>(ValueSeed<'a>);

impl<'de> DeserializeSeed<'de> for ListSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ListSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let ValueSeed { field, number, out } = self.0;
        while seq
            .next_element_seed(ValueSeed {
                field,
                number,
                out: &mut *out,
            })?
            .is_some()
        {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use prost_reflect::{DescriptorPool, DynamicMessage, Value};
    use prost_types::field_descriptor_proto::{Label, Type};
    use prost_types::{
        DescriptorProto, EnumDescriptorProto, EnumValueDescriptorProto, FieldDescriptorProto,
        FileDescriptorProto, FileDescriptorSet,
    };
    use rand::rngs::StdRng;
    use rand::{Rng as _, SeedableRng as _};

    use super::*;

    fn service_pool() -> DescriptorPool {
        DescriptorPool::decode(crate::proto::FILE_DESCRIPTOR_SET).expect("descriptors")
    }

    /// prost-reflect's JSON of `wire`, the reference.
    fn reference(descriptor: &MessageDescriptor, wire: &[u8]) -> serde_json::Value {
        let message = DynamicMessage::decode(descriptor.clone(), wire).expect("decodes");
        // Through bytes, as Connect answers: a `Value` would widen an f32 to f64 first.
        let json = serde_json::to_vec(&message).expect("prost-reflect writes it");
        serde_json::from_slice(&json).expect("valid JSON")
    }

    /// Ours, parsed; `None` when this writer leaves the message to prost-reflect.
    fn ours(descriptor: &MessageDescriptor, wire: &[u8]) -> Option<serde_json::Value> {
        let json = to_json(descriptor, wire)?;
        Some(serde_json::from_slice(&json).expect("valid JSON"))
    }

    fn is_timestamp(descriptor: &MessageDescriptor) -> bool {
        descriptor.full_name() == "google.protobuf.Timestamp"
    }

    /// A message of type `descriptor` with random values in about three of four fields,
    /// drawn to include the edges of each kind.
    fn random(descriptor: &MessageDescriptor, rng: &mut StdRng, depth: usize) -> DynamicMessage {
        let mut message = DynamicMessage::new(descriptor.clone());
        if is_timestamp(descriptor) {
            let seconds = [0, 1_733_500_000, -62_135_596_800, 253_402_300_799, -1];
            let nanos = [0, 1, 1_000, 1_000_000, 120_000_000, 999_999_999];
            message.set_field_by_number(1, Value::I64(seconds[rng.random_range(0..seconds.len())]));
            message.set_field_by_number(2, Value::I32(nanos[rng.random_range(0..nanos.len())]));
            return message;
        }
        if descriptor.full_name() == "google.protobuf.FieldMask" {
            // Paths JSON can carry (lower snake case, as field names are).
            let paths = ["name", "profile_id", "last_read_message_index"];
            let count = rng.random_range(0..=paths.len());
            let paths = paths[..count].iter().map(|p| Value::String((*p).into()));
            message.set_field_by_number(1, Value::List(paths.collect()));
            return message;
        }
        for field in descriptor.fields() {
            // A real oneof is left to prost-reflect (its own test).
            let in_oneof = field
                .containing_oneof()
                .is_some_and(|oneof| !oneof.is_synthetic());
            if field.is_map() || in_oneof || rng.random_range(0..4) == 0 {
                continue;
            }
            let kind = field.kind();
            let value = if field.is_list() {
                Value::List(
                    (0..rng.random_range(0..4))
                        .map(|_| single(&kind, rng, depth))
                        .collect(),
                )
            } else {
                single(&kind, rng, depth)
            };
            message.set_field(&field, value);
        }
        message
    }

    fn single(kind: &Kind, rng: &mut StdRng, depth: usize) -> Value {
        fn pick<T: Copy>(rng: &mut StdRng, from: &[T]) -> T {
            from[rng.random_range(0..from.len())]
        }
        match kind {
            Kind::Bool => Value::Bool(rng.random()),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                Value::I32(pick(rng, &[0, 1, -1, i32::MAX, i32::MIN, 150]))
            }
            Kind::Uint32 | Kind::Fixed32 => Value::U32(pick(rng, &[0, 1, u32::MAX, 300])),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                Value::I64(pick(rng, &[0, 1, -1, i64::MAX, i64::MIN, 1 << 53]))
            }
            Kind::Uint64 | Kind::Fixed64 => Value::U64(pick(rng, &[0, 1, u64::MAX, 1 << 60])),
            Kind::Float => Value::F32(pick(
                rng,
                &[
                    0.0,
                    -0.0,
                    1.5,
                    -3.25e10,
                    f32::NAN,
                    f32::INFINITY,
                    f32::NEG_INFINITY,
                ],
            )),
            Kind::Double => Value::F64(pick(
                rng,
                &[
                    0.0,
                    0.1,
                    -2.5e-300,
                    1e300,
                    f64::NAN,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                ],
            )),
            Kind::String => Value::String(
                pick(
                    rng,
                    &[
                        "",
                        "Ana",
                        "+15551234567",
                        "quote \" backslash \\ newline \n tab \t nul \u{0} é 😀 \u{7f}",
                        "</script>",
                    ],
                )
                .to_owned(),
            ),
            Kind::Bytes => Value::Bytes(
                pick(rng, &[&b""[..], b"\x00\xff", b"abc", b"\xfb\xff\xbf"])
                    .to_vec()
                    .into(),
            ),
            Kind::Enum(descriptor) => {
                let mut numbers: Vec<i32> = descriptor.values().map(|v| v.number()).collect();
                // A number the enum does not name.
                numbers.push(4242);
                Value::EnumNumber(pick(rng, &numbers))
            }
            Kind::Message(inner) => {
                if depth > 3 {
                    Value::Message(DynamicMessage::new(inner.clone()))
                } else {
                    Value::Message(random(inner, rng, depth + 1))
                }
            }
        }
    }

    /// Every message type the service answers with, and the types inside them.
    fn answered() -> Vec<MessageDescriptor> {
        let pool = service_pool();
        let service = pool
            .get_service_by_name("participants.v1.ParticipantService")
            .expect("the service");
        let mut found: Vec<MessageDescriptor> = Vec::new();
        let mut todo: Vec<MessageDescriptor> = service.methods().map(|m| m.output()).collect();
        while let Some(descriptor) = todo.pop() {
            if found.contains(&descriptor) {
                continue;
            }
            for field in descriptor.fields() {
                if let Kind::Message(inner) = field.kind() {
                    todo.push(inner);
                }
            }
            found.push(descriptor);
        }
        found
    }

    #[test]
    fn every_answer_of_the_service_is_written_here_as_prost_reflect_writes_it() {
        let mut rng = StdRng::seed_from_u64(14);
        let types = answered();
        for name in [
            "participants.v1.Participant",
            "participants.v1.ServiceParticipant",
            "participants.v1.ListParticipantsResponse",
            "participants.v1.ListServiceParticipantsResponse",
            "google.protobuf.Empty",
            "google.protobuf.Timestamp",
        ] {
            assert!(
                types.iter().any(|t| t.full_name() == name),
                "{name} is answered"
            );
        }
        for descriptor in &types {
            for round in 0..200 {
                let wire = random(descriptor, &mut rng, 0).encode_to_vec();
                let expected = reference(descriptor, &wire);
                let written = ours(descriptor, &wire).unwrap_or_else(|| {
                    panic!("{} (round {round}) fell back", descriptor.full_name())
                });
                assert_eq!(written, expected, "{}", descriptor.full_name());
            }
        }
    }

    #[test]
    fn every_message_of_the_package_is_written_as_prost_reflect_writes_it_or_left_to_it() {
        let mut rng = StdRng::seed_from_u64(16);
        let pool = service_pool();
        for descriptor in pool.all_messages() {
            for _ in 0..50 {
                let wire = random(&descriptor, &mut rng, 0).encode_to_vec();
                if let Some(written) = ours(&descriptor, &wire) {
                    assert_eq!(
                        written,
                        reference(&descriptor, &wire),
                        "{}",
                        descriptor.full_name()
                    );
                }
            }
        }
    }

    #[test]
    fn damaged_messages_never_panic_and_are_written_as_prost_reflect_writes_them_or_left() {
        let mut rng = StdRng::seed_from_u64(99);
        let types = answered();
        let mut compared = 0;
        for round in 0..20_000 {
            let descriptor = &types[round % types.len()];
            let mut wire = random(descriptor, &mut rng, 0).encode_to_vec();
            if wire.is_empty() {
                continue;
            }
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..wire.len());
                match rng.random_range(0..3) {
                    0 => wire[at] = rng.random(),
                    1 => wire.truncate(at),
                    _ => wire.insert(at, rng.random()),
                }
                if wire.is_empty() {
                    break;
                }
            }
            let written = to_json(descriptor, &wire);
            let Ok(message) = DynamicMessage::decode(descriptor.clone(), wire.as_slice()) else {
                continue;
            };
            let (Some(written), Ok(expected)) = (written, serde_json::to_vec(&message)) else {
                continue;
            };
            let written: serde_json::Value = serde_json::from_slice(&written).expect("valid JSON");
            let expected: serde_json::Value = serde_json::from_slice(&expected).expect("JSON");
            assert_eq!(first_difference(&written, &expected, "$"), None);
            compared += 1;
        }
        assert!(
            compared > 1000,
            "only {compared} damaged messages were compared"
        );
    }

    /// prost-reflect's reading of `json` as `descriptor`, encoded (defaults omitted).
    fn reflected_wire(descriptor: &MessageDescriptor, json: &[u8]) -> Option<Vec<u8>> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let options = prost_reflect::DeserializeOptions::new().deny_unknown_fields(false);
        let message =
            DynamicMessage::deserialize_with_options(descriptor.clone(), &mut de, &options).ok()?;
        de.end().ok()?;
        Some(message.encode_to_vec())
    }

    /// Ours, decoded and encoded again by prost-reflect so that both read the same bytes
    /// for the same message (defaults omitted, fields in order).
    fn read_wire(descriptor: &MessageDescriptor, json: &[u8]) -> Option<Vec<u8>> {
        let wire = from_json(descriptor, json)?;
        let message = DynamicMessage::decode(descriptor.clone(), wire.as_slice())
            .expect("what from_json writes decodes");
        Some(message.encode_to_vec())
    }

    /// JSON of a random message, in each way a client may write it.
    fn random_json(descriptor: &MessageDescriptor, rng: &mut StdRng) -> Vec<u8> {
        let message = random(descriptor, rng, 0);
        let options = prost_reflect::SerializeOptions::new()
            .use_proto_field_name(rng.random())
            .use_enum_numbers(rng.random_range(0..4) == 0)
            .stringify_64_bit_integers(rng.random())
            .skip_default_fields(rng.random());
        let mut json = serde_json::Serializer::new(Vec::new());
        message
            .serialize_with_options(&mut json, &options)
            .expect("serializes");
        json.into_inner()
    }

    #[test]
    fn every_request_of_the_service_is_read_as_prost_reflect_reads_it_or_left_to_it() {
        let mut rng = StdRng::seed_from_u64(7);
        let pool = service_pool();
        let service = pool
            .get_service_by_name("participants.v1.ParticipantService")
            .expect("the service");
        let mut read = 0;
        for method in service.methods() {
            let descriptor = method.input();
            for _ in 0..300 {
                let json = random_json(&descriptor, &mut rng);
                let Some(ours) = read_wire(&descriptor, &json) else {
                    continue;
                };
                read += 1;
                let expected = reflected_wire(&descriptor, &json).unwrap_or_else(|| {
                    panic!(
                        "prost-reflect refuses what we read: {}",
                        String::from_utf8_lossy(&json)
                    )
                });
                assert_eq!(ours, expected, "{}", String::from_utf8_lossy(&json));
            }
        }
        assert!(read > 1000, "only {read} requests were read here");
        // The shapes Connect clients send for the calls the bench measures.
        let fetch = pool
            .get_message_by_name("participants.v1.FetchParticipantRequest")
            .expect("FetchParticipantRequest");
        let body =
            br#"{"conversationId":"conv_conversation_01","participantId":"conv_participant_01"}"#;
        assert_eq!(read_wire(&fetch, body), reflected_wire(&fetch, body));
        assert!(read_wire(&fetch, body).is_some());
        let create = pool
            .get_message_by_name("participants.v1.CreateParticipantRequest")
            .expect("CreateParticipantRequest");
        let body = br#"{"conversation_id":"c","name":"Ana","type":"PARTICIPANT_TYPE_CUSTOMER",
            "addresses":[{"channel":"CHANNEL_SMS","address":"+15551234567"}],"future":[1,{"a":null}]}"#;
        assert!(read_wire(&create, body).is_some());
        assert_eq!(read_wire(&create, body), reflected_wire(&create, body));
    }

    #[test]
    fn every_kind_of_field_is_read_as_prost_reflect_reads_it_or_left_to_it() {
        let descriptor = all_kinds();
        let mut rng = StdRng::seed_from_u64(8);
        for _ in 0..500 {
            let json = random_json(&descriptor, &mut rng);
            if let Some(ours) = read_wire(&descriptor, &json) {
                assert_eq!(Some(ours), reflected_wire(&descriptor, &json));
            }
        }
        // Floats, bytes and repeated numbers fall back; messages without them are read.
        let plain = br#"{"fTypeInt32One":-5,"f_type_uint64_one":18446744073709551615,
            "fTypeEnumOne":"COLOUR_BLUE","fTypeStringOpt":"","fTypeStringMany":["a",""],
            "fTypeMessageOne":{"fTypeSint64One":-9223372036854775808,"fTypeMessageMany":[{},{}]}}"#;
        assert!(read_wire(&descriptor, plain).is_some());
        assert_eq!(
            read_wire(&descriptor, plain),
            reflected_wire(&descriptor, plain)
        );
    }

    #[test]
    fn oneofs_empty_and_defaults_are_handled_as_prost_reflect_handles_them() {
        let descriptor = all_kinds();
        // Two members of one oneof on the wire: prost-reflect keeps the last.
        let mut both = bytes_field(100, b"x");
        prost::encoding::int32::encode(101, &7, &mut both);
        assert!(to_json(&descriptor, &both).is_none());
        assert!(from_json(&descriptor, br#"{"choiceA":"x"}"#).is_none());
        // `Empty` refuses any key in prost-reflect; `{}` is the empty message.
        let empty = service_pool()
            .get_message_by_name("google.protobuf.Empty")
            .expect("Empty");
        assert!(from_json(&empty, br#"{"x":1}"#).is_none());
        assert_eq!(from_json(&empty, b"{}"), Some(Vec::new()));
        assert_eq!(to_json(&empty, b""), Some(b"{}".to_vec()));
        // Defaults of fields without presence are left out, as prost leaves them out:
        // the same bytes as prost-reflect's, so the same size against the limit.
        let fetch = service_pool()
            .get_message_by_name("participants.v1.FetchParticipantRequest")
            .expect("FetchParticipantRequest");
        for body in [
            &br#"{"conversationId":"","participantId":"conv_participant_01"}"#[..],
            br#"{"conversationId":"c","participantId":""}"#,
            br#"{}"#,
        ] {
            assert_eq!(from_json(&fetch, body), reflected_wire(&fetch, body));
        }
        let plain =
            br#"{"fTypeInt32One":0,"fTypeBoolOne":false,"fTypeEnumOne":"COLOUR_UNSPECIFIED",
            "fTypeStringOne":"","fTypeInt32Opt":0,"fTypeStringOpt":""}"#;
        assert_eq!(
            from_json(&descriptor, plain),
            reflected_wire(&descriptor, plain)
        );
        // Repeated numbers are packed by prost-reflect: left to it.
        assert!(from_json(&descriptor, br#"{"fTypeInt32Many":[1,2]}"#).is_none());
    }

    #[test]
    fn what_is_left_to_prost_reflect_when_reading() {
        let fetch = service_pool()
            .get_message_by_name("participants.v1.FetchParticipantRequest")
            .expect("FetchParticipantRequest");
        for body in [
            &b""[..],
            b"[]",
            b"null",
            br#"{"conversationId":null}"#,
            br#"{"conversationId":5}"#,
            br#"{"conversationId":"a","conversation_id":"b"}"#,
            br#"{"conversationId":"a","conversationId":"b"}"#,
            br#"{"conversationId":"a"} trailing"#,
            br#"{"conversationId":"a""#,
        ] {
            assert!(
                from_json(&fetch, body).is_none(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let descriptor = all_kinds();
        for body in [
            &br#"{"fTypeInt32One":2147483648}"#[..],
            br#"{"fTypeInt32One":"5"}"#,
            br#"{"fTypeInt32One":1.0}"#,
            br#"{"fTypeUint32One":-1}"#,
            br#"{"fTypeEnumOne":"COLOUR_PURPLE"}"#,
            br#"{"fTypeEnumOne":1}"#,
            br#"{"fTypeDoubleOne":1.5}"#,
            br#"{"fTypeBytesOne":"AA=="}"#,
            br#"{"fTypeBoolOne":"true"}"#,
            br#"{"fTypeMessageMany":null}"#,
        ] {
            assert!(
                from_json(&descriptor, body).is_none(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // A timestamp and a field mask are well-known types: prost-reflect's.
        let update = service_pool()
            .get_message_by_name("participants.v1.UpdateParticipantRequest")
            .expect("UpdateParticipantRequest");
        assert!(from_json(&update, br#"{"updateMask":"name"}"#).is_none());
    }

    #[test]
    fn damaged_json_is_never_read_otherwise_than_prost_reflect_reads_it() {
        let mut rng = StdRng::seed_from_u64(12);
        let pool = service_pool();
        let service = pool
            .get_service_by_name("participants.v1.ParticipantService")
            .expect("the service");
        let inputs: Vec<_> = service.methods().map(|m| m.input()).collect();
        let alphabet = b"{}[]\":,0123456789-.eE truefalsnul\\aZ_";
        for round in 0..20_000 {
            let descriptor = &inputs[round % inputs.len()];
            let mut json = random_json(descriptor, &mut rng);
            for _ in 0..rng.random_range(1..3) {
                if json.is_empty() {
                    break;
                }
                let at = rng.random_range(0..json.len());
                let byte = alphabet[rng.random_range(0..alphabet.len())];
                match rng.random_range(0..3) {
                    0 => json[at] = byte,
                    1 => {
                        json.remove(at);
                    }
                    _ => json.insert(at, byte),
                }
            }
            if let Some(ours) = read_wire(descriptor, &json) {
                assert_eq!(
                    Some(ours),
                    reflected_wire(descriptor, &json),
                    "{}",
                    String::from_utf8_lossy(&json)
                );
            }
        }
    }

    /// A descriptor with a field of every kind, singular, repeated (packed and not) and
    /// proto3 `optional`, a oneof, an enum and a nested message.
    fn all_kinds() -> MessageDescriptor {
        let kinds = [
            Type::Double,
            Type::Float,
            Type::Int64,
            Type::Uint64,
            Type::Int32,
            Type::Fixed64,
            Type::Fixed32,
            Type::Bool,
            Type::String,
            Type::Bytes,
            Type::Uint32,
            Type::Sfixed32,
            Type::Sfixed64,
            Type::Sint32,
            Type::Sint64,
            Type::Enum,
            Type::Message,
        ];
        let mut fields = Vec::new();
        // A real oneof first (synthetic ones, of proto3 `optional`, come last).
        let mut oneofs = vec![prost_types::OneofDescriptorProto {
            name: Some("choice".into()),
            ..Default::default()
        }];
        for (number, name, kind) in [
            (100, "choice_a", Type::String),
            (101, "choice_b", Type::Int32),
        ] {
            fields.push(FieldDescriptorProto {
                name: Some(name.into()),
                number: Some(number),
                label: Some(Label::Optional as i32),
                r#type: Some(kind as i32),
                oneof_index: Some(0),
                ..Default::default()
            });
        }
        for (i, kind) in kinds.iter().enumerate() {
            let type_name = match kind {
                Type::Enum => Some(".t.Colour".to_owned()),
                Type::Message => Some(".t.AllKinds".to_owned()),
                _ => None,
            };
            let base = i32::try_from(i).expect("small") * 4 + 1;
            let field = |suffix: &str, number: i32, label: Label, packed: Option<bool>| {
                FieldDescriptorProto {
                    name: Some(format!("f_{}_{suffix}", kind.as_str_name().to_lowercase())),
                    number: Some(number),
                    label: Some(label as i32),
                    r#type: Some(*kind as i32),
                    type_name: type_name.clone(),
                    options: packed.map(|packed| prost_types::FieldOptions {
                        packed: Some(packed),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            };
            fields.push(field("one", base, Label::Optional, None));
            fields.push(field("many", base + 1, Label::Repeated, None));
            if !matches!(kind, Type::String | Type::Bytes | Type::Message) {
                fields.push(field("unpacked", base + 2, Label::Repeated, Some(false)));
            }
            if *kind != Type::Message {
                let mut optional = field("opt", base + 3, Label::Optional, None);
                optional.proto3_optional = Some(true);
                optional.oneof_index = Some(i32::try_from(oneofs.len()).expect("small"));
                oneofs.push(prost_types::OneofDescriptorProto {
                    name: Some(format!("_f_{}_opt", kind.as_str_name().to_lowercase())),
                    ..Default::default()
                });
                fields.push(optional);
            }
        }
        let file = FileDescriptorProto {
            name: Some("t.proto".into()),
            package: Some("t".into()),
            syntax: Some("proto3".into()),
            message_type: vec![DescriptorProto {
                name: Some("AllKinds".into()),
                field: fields,
                oneof_decl: oneofs,
                ..Default::default()
            }],
            enum_type: vec![EnumDescriptorProto {
                name: Some("Colour".into()),
                value: ["COLOUR_UNSPECIFIED", "COLOUR_RED", "COLOUR_BLUE"]
                    .iter()
                    .zip([0, 1, -2])
                    .map(|(name, number)| EnumValueDescriptorProto {
                        name: Some((*name).into()),
                        number: Some(number),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let pool = DescriptorPool::from_file_descriptor_set(FileDescriptorSet { file: vec![file] })
            .expect("a valid descriptor");
        pool.get_message_by_name("t.AllKinds").expect("AllKinds")
    }

    #[test]
    fn every_kind_of_field_is_written_as_prost_reflect_writes_it() {
        let descriptor = all_kinds();
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..500 {
            // Nested at most two levels down: the kinds, not the depth, are under test.
            let wire = random(&descriptor, &mut rng, 2).encode_to_vec();
            let written = ours(&descriptor, &wire).expect("handled");
            let expected = reference(&descriptor, &wire);
            assert_eq!(first_difference(&written, &expected, "$"), None);
        }
    }

    /// The path of the first place where `a` and `b` differ, with both values there.
    fn first_difference(a: &serde_json::Value, b: &serde_json::Value, at: &str) -> Option<String> {
        use serde_json::Value as J;
        match (a, b) {
            (J::Object(x), J::Object(y)) => {
                x.keys()
                    .chain(y.keys())
                    .find_map(|k| match (x.get(k), y.get(k)) {
                        (Some(p), Some(q)) => first_difference(p, q, &format!("{at}.{k}")),
                        (p, q) => Some(format!("{at}.{k}: ours {p:?}, prost-reflect {q:?}")),
                    })
            }
            (J::Array(x), J::Array(y)) if x.len() == y.len() => x
                .iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (p, q))| first_difference(p, q, &format!("{at}[{i}]"))),
            _ => (a != b).then(|| format!("{at}: ours {a}, prost-reflect {b}")),
        }
    }

    #[test]
    fn timestamps_are_written_as_prost_types_writes_them() {
        let mut rng = StdRng::seed_from_u64(3339);
        let check = |seconds: i64, nanos: i32| {
            let mut wire = Vec::new();
            prost::encoding::int64::encode(1, &seconds, &mut wire);
            prost::encoding::int32::encode(2, &nanos, &mut wire);
            let mut out = Vec::new();
            timestamp(&wire, &mut out).expect("in range");
            let stamp = prost_types::Timestamp { seconds, nanos };
            assert_eq!(
                String::from_utf8(out).expect("UTF-8"),
                format!("\"{stamp}\"")
            );
        };
        let (first, last) = (*TIMESTAMP_SECONDS.start(), *TIMESTAMP_SECONDS.end());
        for seconds in [first, first + 1, -1, 0, 1, 951_782_400, 1_733_500_000, last] {
            for nanos in [
                0,
                1,
                999,
                1_000,
                1_000_000,
                10_000_000,
                999_999_999,
                -1,
                1_500_000_000,
            ] {
                check(seconds, nanos);
            }
        }
        for _ in 0..20_000 {
            let nanos = match rng.random_range(0..4) {
                0 => 0,
                1 => rng.random_range(0..1000) * 1_000_000,
                2 => rng.random_range(0..1_000_000) * 1_000,
                _ => rng.random_range(0..1_000_000_000),
            };
            check(rng.random_range(first..=last), nanos);
        }
    }

    /// A length-delimited field.
    fn bytes_field(number: u32, data: &[u8]) -> Vec<u8> {
        let mut wire = Vec::new();
        prost::encoding::encode_key(number, WireType::LengthDelimited, &mut wire);
        prost::encoding::encode_varint(data.len() as u64, &mut wire);
        wire.extend_from_slice(data);
        wire
    }

    fn participant() -> MessageDescriptor {
        service_pool()
            .get_message_by_name("participants.v1.Participant")
            .expect("Participant")
    }

    #[test]
    fn unknown_fields_are_skipped_and_a_repeated_field_may_come_in_runs() {
        let descriptor = participant();
        let mut wire = bytes_field(1, b"conv_participant_1");
        wire.extend(bytes_field(99, b"from a newer server"));
        let address = bytes_field(2, b"+15551234567");
        wire.extend(bytes_field(7, &address));
        wire.extend(bytes_field(98, b""));
        wire.extend(bytes_field(7, &address));
        wire.extend(bytes_field(4, b"Ana"));
        assert_eq!(
            ours(&descriptor, &wire).expect("handled"),
            reference(&descriptor, &wire)
        );
    }

    #[test]
    fn what_is_left_to_prost_reflect() {
        let descriptor = participant();
        // A singular field twice (protobuf keeps the last; the message fields merge).
        let mut twice = bytes_field(4, b"Ana");
        twice.extend(bytes_field(4, b"Bea"));
        assert!(ours(&descriptor, &twice).is_none());
        // A repeated field in two runs with another field between them.
        let address = bytes_field(2, b"+15551234567");
        let mut apart = bytes_field(7, &address);
        apart.extend(bytes_field(4, b"Ana"));
        apart.extend(bytes_field(7, &address));
        assert!(ours(&descriptor, &apart).is_none());
        // Malformed: a length past the end, a string that is not UTF-8, a wrong wire type.
        assert!(ours(&descriptor, &[0x22, 10, b'A']).is_none());
        assert!(ours(&descriptor, &bytes_field(4, b"\xff\xfe")).is_none());
        assert!(ours(&descriptor, &[0x20, 1]).is_none());
        // A timestamp outside years 1 to 9999 (prost-reflect refuses it too).
        let mut stamp = Vec::new();
        prost::encoding::int64::encode(1, &253_402_300_800, &mut stamp);
        assert!(ours(&descriptor, &bytes_field(8, &stamp)).is_none());
        // Nesting deeper than MAX_DEPTH.
        let descriptor = all_kinds();
        let nested = descriptor
            .fields()
            .find(|f| f.name() == "f_type_message_one")
            .expect("the nested field")
            .number();
        let mut deep = Vec::new();
        for _ in 0..=MAX_DEPTH {
            deep = bytes_field(nested, &deep);
        }
        assert!(ours(&descriptor, &deep).is_none());
    }
}
