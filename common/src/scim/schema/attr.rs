//! An attribute definition (RFC 7643 §7): its type, mutability, what is returned, and
//! its sub-attributes.

use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    String,
    Boolean,
    DateTime,
    Reference,
    Complex,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
}

/// One attribute definition (RFC 7643 §7).
#[derive(Clone, Copy, Debug)]
pub struct Attr {
    pub name: &'static str,
    pub ty: Type,
    pub multi: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub description: &'static str,
    pub sub: &'static [Attr],
    pub canonical: &'static [&'static str],
    pub reference_types: &'static [&'static str],
}

pub(super) const fn attr(name: &'static str, ty: Type, description: &'static str) -> Attr {
    Attr {
        name,
        ty,
        multi: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        uniqueness: Uniqueness::None,
        description,
        sub: &[],
        canonical: &[],
        reference_types: &[],
    }
}

pub(super) const fn string(name: &'static str, description: &'static str) -> Attr {
    attr(name, Type::String, description)
}

impl Attr {
    pub(super) const fn multi(mut self) -> Self {
        self.multi = true;
        self
    }
    pub(super) const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub(super) const fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    pub(super) const fn read_only(mut self) -> Self {
        self.mutability = Mutability::ReadOnly;
        self
    }
    pub(super) const fn immutable(mut self) -> Self {
        self.mutability = Mutability::Immutable;
        self
    }
    pub(super) const fn unique(mut self) -> Self {
        self.uniqueness = Uniqueness::Server;
        self
    }
    pub(super) const fn sub(mut self, sub: &'static [Attr]) -> Self {
        self.sub = sub;
        self
    }
    pub(super) const fn canonical(mut self, values: &'static [&'static str]) -> Self {
        self.canonical = values;
        self
    }
    pub(super) const fn refs(mut self, types: &'static [&'static str]) -> Self {
        self.reference_types = types;
        self
    }

    /// A sub-attribute by name, case-insensitively.
    pub fn sub_attr(&self, name: &str) -> Option<&'static Attr> {
        self.sub.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    pub(super) fn to_json(self) -> Value {
        let mut v = json!({
            "name": self.name,
            "type": match self.ty {
                Type::String => "string",
                Type::Boolean => "boolean",
                Type::DateTime => "dateTime",
                Type::Reference => "reference",
                Type::Complex => "complex",
            },
            "multiValued": self.multi,
            "description": self.description,
            "required": self.required,
            "mutability": match self.mutability {
                Mutability::ReadOnly => "readOnly",
                Mutability::ReadWrite => "readWrite",
                Mutability::Immutable => "immutable",
                Mutability::WriteOnly => "writeOnly",
            },
            "returned": match self.returned {
                Returned::Always => "always",
                Returned::Never => "never",
                Returned::Default => "default",
            },
            "uniqueness": match self.uniqueness {
                Uniqueness::None => "none",
                Uniqueness::Server => "server",
            },
        });
        if matches!(self.ty, Type::String | Type::Reference) {
            v["caseExact"] = json!(self.case_exact);
        }
        if !self.canonical.is_empty() {
            v["canonicalValues"] = json!(self.canonical);
        }
        if !self.reference_types.is_empty() {
            v["referenceTypes"] = json!(self.reference_types);
        }
        if !self.sub.is_empty() {
            v["subAttributes"] = Value::Array(self.sub.iter().map(|a| a.to_json()).collect());
        }
        v
    }
}
