//! The syntax tree of a spec: what the user wrote, with spans, before any meaning is checked.

use serde::Serialize;

use super::span::Spanned;

/// A dotted path such as `data.datas`, split into segments.
pub type Path = Vec<String>;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Spec {
    pub syncs: Vec<Spanned<String>>,
    pub sources: Vec<Spanned<Source>>,
    pub targets: Vec<Spanned<Target>>,
    pub maps: Vec<Spanned<Vec<Mapping>>>,
    /// Directives written at the top level.
    pub directives: Vec<Spanned<Directive>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Source {
    pub kind: Spanned<String>,
    pub endpoint: Spanned<String>,
    pub statements: Vec<Spanned<SourceStmt>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum SourceStmt {
    Connection(Spanned<String>),
    Method(Spanned<String>),
    Param {
        place: Spanned<String>,
        name: Spanned<String>,
        value: Spanned<Value>,
    },
    Window(Vec<WindowOpt>),
    Records(Spanned<Path>),
    Id(Spanned<Path>),
    Modified(Spanned<Path>),
    Total(Spanned<Path>),
    Directive(Directive),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowOpt {
    pub key: Spanned<String>,
    pub value: Spanned<String>,
}

/// A request value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Value {
    Object(Vec<(Spanned<String>, Spanned<Value>)>),
    Array(Vec<Spanned<Value>>),
    Call {
        name: Spanned<String>,
        args: Vec<Spanned<Value>>,
    },
    String(String),
    Number(String),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Directive {
    Paginate {
        style: Option<Spanned<String>>,
        param: Spanned<Path>,
        options: Vec<Spanned<PaginateOpt>>,
    },
    /// `@rate 5/s 100/min [by send|answer]`: the rates, and the spacing when given.
    Rate {
        rates: Vec<Spanned<String>>,
        spacing: Option<Spanned<String>>,
    },
    Retry {
        attempts: Spanned<String>,
        backoff: Option<Spanned<String>>,
        max: Option<Spanned<String>>,
    },
    Timeout(Spanned<String>),
    Flatten {
        path: Spanned<Path>,
        alias: Option<Spanned<String>>,
    },
    Rename {
        from: Spanned<Path>,
        to: Spanned<String>,
        ty: Option<Spanned<TypeName>>,
    },
    Split {
        path: Spanned<Path>,
        separator: Spanned<String>,
    },
    Filter {
        path: Spanned<Path>,
        test: Spanned<FilterTest>,
    },
    Schedule(Spanned<String>),
    Remedy {
        cron: Spanned<String>,
        lookback: Spanned<String>,
    },
    OnError(Spanned<String>),
    OnDuplicateKey(Spanned<String>),
    Alert {
        metric: Spanned<String>,
        threshold: Spanned<String>,
    },
    Unknown(Spanned<String>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum PaginateOpt {
    Size(Spanned<String>),
    Per(Spanned<Path>),
    FromNumber(Spanned<String>),
    FromPath(Spanned<Path>),
    Until(Spanned<EndRule>),
    MaxPages(Spanned<String>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum EndRule {
    Short,
    Empty,
    HasNext(Spanned<Path>),
    PageCount(Spanned<Path>),
    Total(Spanned<Path>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum FilterTest {
    IsNull,
    IsNotNull,
    In(Vec<Spanned<Value>>),
    NotIn(Vec<Spanned<Value>>),
    Compare {
        op: Spanned<String>,
        value: Spanned<Literal>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub kind: Spanned<String>,
    pub table: Spanned<String>,
    pub statements: Vec<Spanned<TargetStmt>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum TargetStmt {
    Connection(Spanned<String>),
    Mode(Spanned<String>),
    Key(Vec<Spanned<String>>),
    Batch(Spanned<String>),
    Create,
    Sql(Spanned<String>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mapping {
    pub column: Spanned<String>,
    pub expr: Spanned<Expr>,
    pub ty: Option<Spanned<TypeName>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TypeName {
    pub name: Spanned<String>,
    pub args: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Expr {
    Case {
        subject: Box<Spanned<Expr>>,
        arms: Vec<CaseArm>,
    },
    Call {
        name: Spanned<String>,
        args: Vec<Spanned<Expr>>,
    },
    Literal(Literal),
    Path(Path),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseArm {
    /// `None` for the `_` arm.
    pub pattern: Spanned<Option<Literal>>,
    pub value: Spanned<Expr>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Literal {
    /// The unescaped text; `content_start` is the byte offset of its first character in the
    /// spec when the text has no escapes (so `<field>` spans can be exact), else `None`.
    String {
        text: String,
        content_start: Option<usize>,
    },
    Number(String),
    Bool(bool),
    Null,
}
