//! Name resolution and the flatten loop: which value a field path of the (flattened,
//! renamed, split) record denotes, and the cartesian expansion of `@flatten` steps.
//!
//! Nothing is copied per flattened row: a row is the original record plus a chain of
//! [`Frame`]s, one per applied `@flatten`, each pointing at the current array element.
//! Paths are resolved once, when the [`super::Transformer`] is built, into a [`Binding`]:
//!
//! - `<prefix>_<field>[.more]` reads `field[.more]` of the element of `@flatten <path>` whose
//!   prefix is `<prefix>` (the last flatten wins when prefixes nest, e.g. `items` and
//!   `items_batchs`). A bare `<prefix>` is the element itself (useful for arrays of scalars).
//!   An element field shadows a parent field of the same flattened name.
//! - A name defined by `@rename old -> new` reads `old` (converted when a type is given).
//! - A path under a `@split` field reads the split array.
//! - Anything else reads the record itself.
//!
//! Empty or missing arrays: the parent is kept once, with every element field absent
//! (`NULL`), so a refund without items still lands in the table instead of vanishing.
//! A value that is not an array (an object or scalar) is treated as a one-element array.

use std::borrow::Cow;

use serde_json::Value;

use crate::plan::{ColumnType, FieldPath, TransformStep};

/// Where the first segment of a resolved path is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Base {
    Record,
    /// The current element of the n-th `@flatten`.
    Element(usize),
    /// The result of the n-th rename/split step.
    Derived(usize),
}

/// A field path resolved against the steps before its use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Binding {
    pub(crate) base: Base,
    /// Followed from the base with [`FieldPath::get`].
    pub(crate) path: FieldPath,
    /// The path as written in the spec, for error messages.
    pub(crate) display: String,
}

/// A value computed from another binding.
#[derive(Debug, Clone)]
pub(crate) enum Derived {
    Rename {
        from: Binding,
        convert: Option<ColumnType>,
    },
    Split {
        from: Binding,
        separator: String,
    },
}

#[derive(Debug)]
enum Def {
    /// The prefix of flatten `index`.
    Flatten { prefix: String, index: usize },
    /// A rename target or split field, read from derived value `index`.
    Name { path: Vec<String>, index: usize },
}

/// What has been defined so far while walking the steps in order.
#[derive(Debug, Default)]
pub(crate) struct Scope {
    /// Every definition so far, in step order; later ones shadow earlier ones.
    defs: Vec<Def>,
    flattens: usize,
    pub(crate) derived: Vec<Derived>,
}

impl Scope {
    /// Resolves `path` against everything defined so far; later definitions win.
    pub(crate) fn resolve(&self, path: &[String]) -> Binding {
        let display = path.join(".");
        for def in self.defs.iter().rev() {
            match def {
                Def::Name { path: name, index } => {
                    if path.starts_with(name) {
                        return Binding {
                            base: Base::Derived(*index),
                            path: path[name.len()..].to_vec().into(),
                            display,
                        };
                    }
                }
                Def::Flatten { prefix, index } => {
                    let Some(first) = path.first() else { continue };
                    if first == prefix {
                        return Binding {
                            base: Base::Element(*index),
                            path: path[1..].to_vec().into(),
                            display,
                        };
                    }
                    let field = first
                        .strip_prefix(prefix.as_str())
                        .and_then(|rest| rest.strip_prefix('_'));
                    if let Some(field) = field.filter(|f| !f.is_empty()) {
                        let mut inner = Vec::with_capacity(path.len());
                        inner.push(field.to_owned());
                        inner.extend_from_slice(&path[1..]);
                        return Binding {
                            base: Base::Element(*index),
                            path: inner.into(),
                            display,
                        };
                    }
                }
            }
        }
        Binding {
            base: Base::Record,
            path: path.to_vec().into(),
            display,
        }
    }

    /// Defines the name(s) introduced by a rename or split step; returns the flatten binding
    /// for a flatten step.
    pub(crate) fn define(&mut self, step: &TransformStep) -> Option<Binding> {
        match step {
            TransformStep::Flatten { path, prefix } => {
                let binding = self.resolve(path);
                self.defs.push(Def::Flatten {
                    prefix: prefix.clone(),
                    index: self.flattens,
                });
                self.flattens += 1;
                Some(binding)
            }
            TransformStep::Rename { from, to, convert } => {
                let from = self.resolve(from);
                self.derived.push(Derived::Rename {
                    from,
                    convert: *convert,
                });
                self.defs.push(Def::Name {
                    path: vec![to.clone()],
                    index: self.derived.len() - 1,
                });
                None
            }
            TransformStep::Split { field, separator } => {
                let from = self.resolve(field);
                self.derived.push(Derived::Split {
                    from,
                    separator: separator.clone(),
                });
                self.defs.push(Def::Name {
                    path: field.to_vec(),
                    index: self.derived.len() - 1,
                });
                None
            }
            TransformStep::Filter { .. } => None,
        }
    }

    /// Whether `binding` reads the record only, never a flatten element.
    pub(crate) fn reads_record_only(&self, binding: &Binding) -> bool {
        match binding.base {
            Base::Record => true,
            Base::Element(_) => false,
            Base::Derived(index) => match &self.derived[index] {
                Derived::Rename { from, .. } | Derived::Split { from, .. } => {
                    self.reads_record_only(from)
                }
            },
        }
    }

    pub(crate) fn flatten_count(&self) -> usize {
        self.flattens
    }
}

/// The current element of each applied flatten, innermost first.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame<'v> {
    /// How many flattens this frame and its parents have applied.
    pub(crate) depth: usize,
    /// The element of flatten `depth - 1`; `None` for an empty array or the root frame.
    pub(crate) element: Option<&'v Value>,
    pub(crate) parent: Option<&'v Frame<'v>>,
}

impl<'v> Frame<'v> {
    pub(crate) const ROOT: Frame<'static> = Frame {
        depth: 0,
        element: None,
        parent: None,
    };

    /// The element of flatten `index`, if that flatten has been applied and had elements.
    pub(crate) fn element(&self, index: usize) -> Option<&'v Value> {
        let mut frame = self;
        loop {
            if frame.depth == index + 1 {
                return frame.element;
            }
            frame = frame.parent?;
        }
    }
}

/// The elements a flatten iterates over: arrays as they are, a lone value as one element,
/// and nothing for null or missing.
pub(crate) fn elements<'a>(value: Option<&'a Cow<'_, Value>>) -> &'a [Value] {
    match value.map(AsRef::as_ref) {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None => &[],
        Some(other) => std::slice::from_ref(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> FieldPath {
        FieldPath::parse(s)
    }

    fn flatten(p: &str) -> TransformStep {
        TransformStep::Flatten {
            path: path(p),
            prefix: p.to_owned(),
        }
    }

    #[test]
    fn resolves_prefixed_names_to_elements() {
        let mut scope = Scope::default();
        scope.define(&flatten("items"));
        let b = scope.resolve(&path("items_asi_id"));
        assert_eq!(b.base, Base::Element(0));
        assert_eq!(b.path, path("asi_id"));
        let b = scope.resolve(&path("items_sku.name"));
        assert_eq!(b.path, path("sku.name"));
        let b = scope.resolve(&path("as_id"));
        assert_eq!(b.base, Base::Record);
        let b = scope.resolve(&path("items"));
        assert_eq!((b.base, b.path.len()), (Base::Element(0), 0));
        // `itemsx` is not under the `items` prefix.
        assert_eq!(scope.resolve(&path("itemsx")).base, Base::Record);
    }

    #[test]
    fn nested_flatten_resolves_through_the_outer_element() {
        let mut scope = Scope::default();
        scope.define(&flatten("items"));
        let inner = scope
            .define(&flatten("items_batchs"))
            .expect("flatten binding");
        assert_eq!(inner.base, Base::Element(0));
        assert_eq!(inner.path, path("batchs"));
        let b = scope.resolve(&path("items_batchs_batch_no"));
        assert_eq!((b.base, b.path), (Base::Element(1), path("batch_no")));
        let b = scope.resolve(&path("items_qty"));
        assert_eq!((b.base, b.path), (Base::Element(0), path("qty")));
    }
}
