//! What a handler's messages look like, for contracts (the AsyncAPI document):
//! the payload it reads and the reply it returns, named after their Rust types,
//! with a content type and, with the `schemars` feature, a JSON Schema.
//!
//! The macros describe a handler from its argument and return types. Which
//! types have a schema is decided where the types are concrete, in the code the
//! macros expand to, by method resolution on [`Probe`] ("autoref
//! specialization"): a `Json<T>` whose `T: JsonSchema` gets `T`'s schema, any
//! other `Json<T>` a JSON content type only; a typed payload describes itself;
//! every other type says nothing.

use std::borrow::Cow;
use std::marker::PhantomData;

use bytes::Bytes;

use super::extract::{Envelope, Json};
use super::message::NatsPayload;

/// A payload type as a contract describes it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PayloadShape {
    /// The Rust type's name, without its path (`OrderPlaced`).
    pub name: Cow<'static, str>,
    /// Its content type (`application/json`), when the codec says.
    pub content_type: Option<&'static str>,
    /// Its JSON Schema (draft 07, references into the document's
    /// `components/schemas`), with the `schemars` feature and a type deriving
    /// `JsonSchema`.
    pub schema: Option<serde_json::Value>,
}

impl PayloadShape {
    /// A payload of type `T` with `content_type` and no schema.
    pub fn of<T: ?Sized>(content_type: Option<&'static str>) -> Self {
        Self { name: Cow::Owned(type_name::<T>()), content_type, schema: None }
    }

    /// Adds a schema.
    #[must_use]
    pub fn with_schema(mut self, schema: Option<serde_json::Value>) -> Self {
        self.schema = schema;
        self
    }
}

/// What a handler reads and answers, as far as its types tell.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct HandlerShape {
    /// The payload it decodes; `None` when it reads no payload or only raw parts.
    pub payload: Option<PayloadShape>,
    /// What it replies with; `None` for `()` or a type that says nothing.
    pub reply: Option<PayloadShape>,
    /// The handler's doc comment.
    pub description: Option<&'static str>,
}

impl HandlerShape {
    /// A shape with this payload and reply.
    pub fn new(payload: Option<PayloadShape>, reply: Option<PayloadShape>) -> Self {
        Self { payload, reply, description: None }
    }

    /// Adds the handler's documentation.
    #[must_use]
    pub fn described(mut self, description: &'static str) -> Self {
        self.description = Some(description);
        self
    }

    /// Nothing known: the shape of handlers registered without a macro.
    pub(crate) fn unknown(_: &mut Schemas) -> Self {
        Self::default()
    }
}

/// The schemas of one document: one generator, so a type used by several
/// messages is defined once, under `components/schemas`.
pub struct Schemas {
    #[cfg(feature = "schemars")]
    generator: schemars::SchemaGenerator,
}

impl std::fmt::Debug for Schemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schemas").finish_non_exhaustive()
    }
}

impl Default for Schemas {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the document keeps shared schemas; references point there.
#[cfg(feature = "schemars")]
const SCHEMAS_PATH: &str = "/components/schemas";

impl Schemas {
    /// An empty set.
    pub fn new() -> Self {
        Self {
            #[cfg(feature = "schemars")]
            generator: schemars::generate::SchemaSettings::draft07()
                .with(|settings| {
                    settings.definitions_path = SCHEMAS_PATH.into();
                    settings.meta_schema = None;
                })
                .into_generator(),
        }
    }

    /// `T`'s schema: a reference for a named type, whose definition this set keeps.
    #[cfg(feature = "schemars")]
    pub fn schema_for<T: ?Sized + schemars::JsonSchema>(&mut self) -> serde_json::Value {
        self.generator.subschema_for::<T>().to_value()
    }

    /// The named types' definitions, by name.
    pub fn into_definitions(self) -> serde_json::Map<String, serde_json::Value> {
        #[cfg(feature = "schemars")]
        {
            let mut generator = self.generator;
            generator.take_definitions(true)
        }
        #[cfg(not(feature = "schemars"))]
        serde_json::Map::new()
    }
}

/// A type's name without its module path, generics kept (`Page<Order>`).
fn type_name<T: ?Sized>() -> String {
    let full = std::any::type_name::<T>();
    let mut out = String::with_capacity(full.len());
    let mut segment_start = 0;
    for (i, c) in full.char_indices() {
        match c {
            ':' => segment_start = i + 1,
            '<' | '>' | ',' | ' ' | '(' | ')' | '[' | ']' | '&' | ';' => {
                out.push_str(&full[segment_start..i]);
                out.push(c);
                segment_start = i + 1;
            }
            _ => {}
        }
    }
    out.push_str(&full[segment_start..]);
    out
}

/// The probe the macros' expansions call `payload` on, as
/// `(&&&Probe::<T>::new()).payload(schemas)`; see the module docs.
#[doc(hidden)]
pub struct Probe<T: ?Sized>(PhantomData<fn() -> Box<T>>);

impl<T: ?Sized> Probe<T> {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T: ?Sized> std::fmt::Debug for Probe<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Probe")
    }
}

const JSON: Option<&str> = Some("application/json");

/// First choice: a type with a JSON Schema.
#[doc(hidden)]
pub trait WithSchema {
    fn payload(&self, schemas: &mut Schemas) -> Option<PayloadShape>;
}

#[cfg(feature = "schemars")]
impl<T: schemars::JsonSchema> WithSchema for &&Probe<Json<T>> {
    fn payload(&self, schemas: &mut Schemas) -> Option<PayloadShape> {
        Some(PayloadShape::of::<T>(JSON).with_schema(Some(schemas.schema_for::<T>())))
    }
}

#[cfg(feature = "schemars")]
impl<T: schemars::JsonSchema> WithSchema for &&Probe<Envelope<T>> {
    fn payload(&self, schemas: &mut Schemas) -> Option<PayloadShape> {
        Some(PayloadShape::of::<T>(JSON).with_schema(Some(schemas.schema_for::<T>())))
    }
}

/// Second choice: what the type's kind tells (a typed payload describes itself).
#[doc(hidden)]
pub trait ByKind {
    fn payload(&self, schemas: &mut Schemas) -> Option<PayloadShape>;
}

impl<T: NatsPayload> ByKind for &Probe<T> {
    fn payload(&self, schemas: &mut Schemas) -> Option<PayloadShape> {
        Some(T::payload_shape(schemas))
    }
}

impl<T> ByKind for &Probe<Json<T>> {
    fn payload(&self, _: &mut Schemas) -> Option<PayloadShape> {
        Some(PayloadShape::of::<T>(JSON))
    }
}

impl<T> ByKind for &Probe<Envelope<T>> {
    fn payload(&self, _: &mut Schemas) -> Option<PayloadShape> {
        Some(PayloadShape::of::<T>(JSON))
    }
}

impl ByKind for &Probe<String> {
    fn payload(&self, _: &mut Schemas) -> Option<PayloadShape> {
        Some(PayloadShape::of::<String>(Some("text/plain")))
    }
}

impl ByKind for &Probe<&'static str> {
    fn payload(&self, _: &mut Schemas) -> Option<PayloadShape> {
        Some(PayloadShape::of::<String>(Some("text/plain")))
    }
}

impl ByKind for &Probe<Bytes> {
    fn payload(&self, _: &mut Schemas) -> Option<PayloadShape> {
        Some(PayloadShape::of::<Bytes>(Some("application/octet-stream")))
    }
}

impl ByKind for &Probe<Vec<u8>> {
    fn payload(&self, _: &mut Schemas) -> Option<PayloadShape> {
        Some(PayloadShape::of::<Bytes>(Some("application/octet-stream")))
    }
}

/// Last choice: the type says nothing about a payload (`Subject`, `State<T>`, `()`).
#[doc(hidden)]
pub trait Silent {
    fn payload(&self, schemas: &mut Schemas) -> Option<PayloadShape>;
}

impl<T: ?Sized> Silent for Probe<T> {
    fn payload(&self, _: &mut Schemas) -> Option<PayloadShape> {
        None
    }
}

/// The schema of a typed payload, for the derives: `T`'s with the `schemars`
/// feature and `T: JsonSchema`, else none; called as
/// `(&&Probe::<Self>::new()).schema(schemas)`.
#[doc(hidden)]
pub trait SchemaOf {
    fn schema(&self, schemas: &mut Schemas) -> Option<serde_json::Value>;
}

#[cfg(feature = "schemars")]
impl<T: schemars::JsonSchema> SchemaOf for &Probe<T> {
    fn schema(&self, schemas: &mut Schemas) -> Option<serde_json::Value> {
        Some(schemas.schema_for::<T>())
    }
}

/// [`SchemaOf`]'s fallback: no schema.
#[doc(hidden)]
pub trait NoSchema {
    fn schema(&self, schemas: &mut Schemas) -> Option<serde_json::Value>;
}

impl<T: ?Sized> NoSchema for Probe<T> {
    fn schema(&self, _: &mut Schemas) -> Option<serde_json::Value> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(dead_code)]
    #[derive(serde::Deserialize)]
    struct Order {
        id: u64,
    }

    #[test]
    #[allow(clippy::needless_borrow)] // the borrows choose the probe's level, as the macros write it
    fn probes_pick_the_most_specific_description() {
        let mut schemas = Schemas::new();
        let json = (&&&Probe::<Json<Order>>::new()).payload(&mut schemas);
        let json = json.as_ref().map(|shape| (shape.name.as_ref(), shape.content_type));
        assert_eq!(json, Some(("Order", JSON)));
        let text = (&&&Probe::<String>::new()).payload(&mut schemas).map(|shape| shape.content_type);
        assert_eq!(text, Some(Some("text/plain")));
        assert_eq!((&&&Probe::<async_nats::Subject>::new()).payload(&mut schemas), None);
        assert_eq!((&&&Probe::<()>::new()).payload(&mut schemas), None);
    }

    #[test]
    fn type_names_lose_their_paths_but_keep_their_generics() {
        assert_eq!(type_name::<Order>(), "Order");
        assert_eq!(type_name::<Vec<Option<Order>>>(), "Vec<Option<Order>>");
        assert_eq!(type_name::<(u8, String)>(), "(u8, String)");
    }
}
