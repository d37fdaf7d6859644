//! The target half of a scheme: the table, its columns and map, the main SQL bound to the
//! request fields, the write mode and key; and the request field reader both halves use.

use super::*;

impl Translator {
    /// Translates the target half; returns the target connection's profile entry.
    pub(super) fn target(&mut self, target: &Node) -> (String, String) {
        let default_table = self.default_table();
        self.draft.target_table.clone_from(&default_table);
        if !matches!(target.value, Value::Object(_)) {
            let line = self.error(
                target,
                codes::NOT_A_SCHEME,
                format!("the target half is {}, not an object", target.kind()),
                "a target half looks like {\"api\": \"execute\", \"request\": [...], \"otherRequest\": [...]}",
            );
            self.draft.target.push(Line::stmt("connection bi"));
            self.draft.target.push(line);
            self.fallback_map();
            return ("bi".to_owned(), vendor::mysql_entry("bi", None));
        }
        for member in target.members() {
            if !TARGET_KEYS.contains(&member.key.as_str()) {
                let line = self.unknown_key(&member.node, "the target", TARGET_KEYS);
                self.draft.target.push(line);
            }
        }
        let api = target.get("api").and_then(Node::text).unwrap_or_default();
        let writes = matches!(api.trim(), "execute" | "batchexecute");
        if !writes {
            let node = target.get("api").unwrap_or(target);
            let line = self.error(
                node,
                codes::TARGET_API,
                if api.trim().is_empty() {
                    "the target has no `api`: it writes nowhere qsync knows".to_owned()
                } else {
                    format!("the target API `{}` does not write to MySQL (`空操作` keeps the records in the platform); the spec writes them to the table `{default_table}`", api.trim())
                },
                "check the table and its columns; qsync writes MySQL tables only",
            );
            self.draft.target.push(line);
        }

        // Columns from the request fields.
        let mut columns = Vec::new();
        if let Some(request) = target.get("request") {
            self.in_map = true;
            let fields = self.target_fields(request);
            let mut seen = BTreeSet::new();
            for field in fields {
                if let Some(column) = self.column(field) {
                    if seen.insert(column.name.clone()) {
                        columns.push(column);
                    } else {
                        let line = self.error(
                            field,
                            codes::DUPLICATE_FIELD,
                            format!(
                                "the column `{}` is given twice; the first is kept",
                                column.name
                            ),
                            "keep one of them",
                        );
                        self.draft.map.push(line);
                    }
                }
            }
        }

        // main_sql: table, mode and how values bind to columns; limit: batch.
        let mut main = None;
        let mut batch = None;
        if let Some(other) = target.get("otherRequest") {
            for item in other.elements() {
                let key = item.get("field").and_then(Node::text).unwrap_or_default();
                let value = item.get("value");
                match key.as_str() {
                    "main_sql" => main = value.map(|v| (v, v.text().unwrap_or_default())),
                    "limit" => batch = value,
                    _ => {
                        let line =
                            self.unknown_name(item, &key, "`otherRequest`", OTHER_REQUEST_FIELDS);
                        self.draft.target.push(line);
                    }
                }
            }
        }
        let mut parsed = None;
        match &main {
            Some((node, text)) => match sql::parse(text) {
                Ok(m) => {
                    self.draft.target_table = m.table.clone();
                    parsed = Some(m);
                }
                Err(e) => {
                    let line = self.error(
                        node,
                        codes::MAIN_SQL_NOT_INSERT,
                        format!("{e}; the spec's write mode is left to you"),
                        "qsync writes rows with INSERT, REPLACE, INSERT IGNORE or INSERT … ON DUPLICATE KEY UPDATE",
                    );
                    self.draft.target.push(line);
                }
            },
            None if writes => {
                let line = self.error(
                    target,
                    codes::MISSING_KEY,
                    format!("the target has no `main_sql` in `otherRequest`; the spec writes to `{default_table}` in the default mode"),
                    "add {\"field\": \"main_sql\", \"value\": \"REPLACE INTO t (…) VALUES\"}",
                );
                self.draft.target.push(line);
            }
            None => {}
        }
        if let Some(m) = &parsed {
            if let Some((node, _)) = &main {
                columns = self.bind(node, m, columns);
            }
        }
        if columns.is_empty() {
            self.fallback_columns(target, &mut columns);
        }

        let connection = match parsed.as_ref().and_then(|m| m.database.clone()) {
            Some(db) if is_name(&db) => db,
            _ => "bi".to_owned(),
        };
        let database = (connection != "bi").then_some(connection.as_str());
        let entry = vendor::mysql_entry(&connection, database);
        self.draft.target.insert(
            0,
            Line::stmt_with(
                format!("connection {connection}"),
                database.map(|db| format!("the database `{db}` of main_sql")),
            ),
        );
        self.mode_and_key(target, parsed.as_ref(), &mut columns, writes);
        if let Some(node) = batch {
            match node.text().and_then(|t| t.trim().parse::<u32>().ok()) {
                Some(n) if (1..=100_000).contains(&n) => {
                    self.draft.target.push(Line::stmt_with(
                        format!("batch {n}"),
                        Some("limit".to_owned()),
                    ));
                }
                _ => {
                    let line = self.wrong_type(node, "`limit`", "a whole number from 1 to 100000");
                    self.draft.target.push(line);
                }
            }
        }
        self.draft.target.push(Line::stmt_with(
            "create",
            Some("create the table from the map's types when it is missing".to_owned()),
        ));
        for column in columns {
            self.draft.map.extend(column.todo);
            self.draft.map.push(Line::Assign {
                keyword: "",
                name: column.name,
                value: match column.ty {
                    Some(ty) => format!("{} : {ty}", column.expr),
                    None => column.expr,
                },
                comment: column.label,
            });
        }
        (connection.clone(), entry)
    }

    /// The target's fields: the children of `main_params` (the one-row form), or the
    /// fields themselves.
    fn target_fields<'n>(&mut self, request: &'n Node) -> Vec<&'n Node> {
        let fields: Vec<&Node> = match &request.value {
            Value::Array(items) => items.iter().collect(),
            _ => {
                let line = self.wrong_type(request, "`request`", "an array of fields");
                self.draft.map.push(line);
                return Vec::new();
            }
        };
        let main_params = fields
            .iter()
            .position(|f| f.get("field").and_then(Node::text).as_deref() == Some("main_params"));
        match main_params {
            Some(i) => {
                for (j, other) in fields.iter().enumerate() {
                    if j != i {
                        let line = self.error(
                            other,
                            codes::UNKNOWN_KEY,
                            "a field beside `main_params` has no qsync translation (qsync writes one row per record, from `main_params`)".to_owned(),
                            "detail rows are a second spec with @flatten over the detail array",
                        );
                        self.draft.map.push(line);
                    }
                }
                match fields[i].get("children") {
                    Some(children) => children.elements().iter().collect(),
                    None => Vec::new(),
                }
            }
            None => fields,
        }
    }

    /// One target field as a map column.
    fn column(&mut self, field: &Node) -> Option<Column> {
        let (name, spec) = self.field_parts(field)?;
        let mut todo = Vec::new();
        let ty = match spec.ty.as_deref() {
            None => None,
            Some(t) => match column_type(t) {
                TypeMatch::Type(ty) => Some(ty.to_owned()),
                TypeMatch::Untyped => None,
                TypeMatch::Unknown => {
                    let node = field.get("type").unwrap_or(field);
                    self.warn(
                        node,
                        codes::UNKNOWN_TYPE,
                        format!("the type `{t}` has no qsync column type; `{name}` is left untyped (text)"),
                        "types: string, int, bigint, float, decimal, date, datetime, boolean, json",
                    );
                    None
                }
            },
        };
        let text = spec.value.and_then(Node::text).unwrap_or_default();
        let expr = if text.trim().is_empty() {
            let node = spec.value.unwrap_or(field);
            todo.push(self.error(
                node,
                codes::NO_VALUE,
                format!("the column `{name}` has no value in the scheme; it is written as NULL"),
                "give the column a field, a constant or sql(...)",
            ));
            "null".to_owned()
        } else {
            match self.column_expr(
                spec.value.unwrap_or(field),
                text.trim(),
                &name,
                ty.as_deref(),
            ) {
                Ok(e) => e,
                Err(line) => {
                    todo.push(line);
                    "null".to_owned()
                }
            }
        };
        Some(Column {
            name,
            expr,
            ty,
            label: spec.label,
            todo,
        })
    }

    /// A target value as a map expression.
    fn column_expr(
        &mut self,
        node: &Node,
        text: &str,
        name: &str,
        ty: Option<&str>,
    ) -> Result<String, Line> {
        if let Some(sql) = text.strip_prefix("_function") {
            return Ok(format!("sql({})", quote(sql.trim())));
        }
        if let Some(inner) = text.strip_prefix("{{").and_then(|t| t.strip_suffix("}}")) {
            let path = inner.trim();
            if is_path(path)
                && !template::VARIABLES.contains(&path)
                && template::days_ago_n(path).is_none()
            {
                if let Some(rest) = path.strip_prefix("extend.") {
                    self.warn(
                        node,
                        codes::PLATFORM_EXTEND,
                        format!("`extend` is the platform's metadata of a record; the spec reads `extend.{rest}` where the vendor sends it, else `{rest}`"),
                        "check which field of the vendor's record holds the value",
                    );
                    return Ok(format!("coalesce({path}, {})", self.field_ref(rest)));
                }
                return Ok(self.field_ref(path));
            }
            return Err(self.error(
                node,
                codes::UNSUPPORTED_VALUE,
                format!("`{text}` is a request template; a column takes record fields, constants and sql(...), so `{name}` is written as NULL"),
                "for the run's time use now(), or sql(\"NOW()\")",
            ));
        }
        if let Some(inner) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            if is_path(inner.trim()) {
                return Ok(self.field_ref(inner.trim()));
            }
        }
        if text.contains('{') {
            // `{as_id}-{items_asi_id}`: an interpolation.
            let mut out = String::new();
            let mut rest = text;
            while let Some(open) = rest.find('{') {
                let close = rest[open..].find('}').map(|c| open + c);
                let Some(close) = close.filter(|c| is_path(rest[open + 1..*c].trim())) else {
                    return Err(self.error(
                        node,
                        codes::UNSUPPORTED_VALUE,
                        format!("`{text}` is not fields in braces and text; `{name}` is written as NULL"),
                        "write {field} for a record field, e.g. \"{as_id}-{items_asi_id}\"",
                    ));
                };
                out.push_str(&rest[..open]);
                out.push('<');
                let field = rest[open + 1..close].trim();
                out.push_str(&self.field_ref(field));
                out.push('>');
                rest = &rest[close + 1..];
            }
            out.push_str(rest);
            return Ok(quote(&out));
        }
        let numeric = matches!(
            ty.map(|t| t.split('(').next().unwrap_or(t)),
            Some("int" | "bigint" | "decimal" | "double")
        );
        if numeric && serde_json::from_str::<serde_json::Number>(text).is_ok() {
            return Ok(text.to_owned());
        }
        if ty == Some("bool") && matches!(text, "true" | "false") {
            return Ok(text.to_owned());
        }
        if let Some(ty) = ty.map(|t| t.split('(').next().unwrap_or(t)) {
            if !value_fits(ty, text) {
                return Err(self.error(
                    node,
                    codes::WRONG_TYPE,
                    format!("the constant {} of `{name}` (type `{ty}`) is not {}; `{name}` is written as NULL", quote(text), expected_value(ty)),
                    "fix the scheme's value or its type",
                ));
            }
        }
        Ok(quote(text))
    }

    /// A record field as the spec names it: Yida form fields live under `data`.
    pub(super) fn field_ref(&self, field: &str) -> String {
        if self.renamed.contains(field) {
            return field.to_owned();
        }
        match &self.vendor {
            Some(v) => record_field(v.kind, field),
            None => field.to_owned(),
        }
    }

    /// Binds `main_sql`'s columns to the request fields' values.
    fn bind(&mut self, node: &Node, sql: &MainSql, fields: Vec<Column>) -> Vec<Column> {
        if sql.columns.is_empty() {
            return fields;
        }
        let mismatch = |t: &mut Translator, why: String| {
            let line = t.error(
                node,
                codes::SQL_COLUMNS,
                format!("{why}; the columns are the request fields instead"),
                "make main_sql's column list and values match the request fields",
            );
            t.draft.map.push(line);
        };
        let slots: Vec<Slot> = match &sql.slots {
            Some(slots) if slots.len() != sql.columns.len() => {
                mismatch(
                    self,
                    format!(
                        "main_sql names {} columns and {} values",
                        sql.columns.len(),
                        slots.len()
                    ),
                );
                return fields;
            }
            Some(slots) => slots.clone(),
            None => vec![Slot::Positional; sql.columns.len()],
        };
        let positional = slots.iter().filter(|s| **s == Slot::Positional).count();
        if positional > 0 && positional != fields.len() {
            mismatch(
                self,
                format!(
                    "main_sql binds {positional} values by position and the request has {} fields",
                    fields.len()
                ),
            );
            return fields;
        }
        let mut used = vec![false; fields.len()];
        let mut position = 0;
        let mut out = Vec::new();
        for (column, slot) in sql.columns.iter().zip(&slots) {
            let bound = match slot {
                Slot::Positional => {
                    position += 1;
                    Some(position - 1)
                }
                Slot::Named(name) => {
                    let found = fields.iter().position(|f| &f.name == name);
                    if found.is_none() {
                        mismatch(self, format!("main_sql's placeholder for `{column}` names `{name}`, which is no request field"));
                        return fields;
                    }
                    found
                }
                Slot::Sql(text) => {
                    out.push(Column {
                        name: column.clone(),
                        expr: format!("sql({})", quote(text)),
                        ty: None,
                        label: Some("main_sql".to_owned()),
                        todo: Vec::new(),
                    });
                    None
                }
            };
            if let Some(i) = bound {
                used[i] = true;
                let mut c = fields[i].clone();
                c.name.clone_from(column);
                out.push(c);
            }
        }
        for (field, used) in fields.iter().zip(used) {
            if !used {
                self.warn(
                    node,
                    codes::UNUSED_FIELD,
                    format!(
                        "main_sql writes the request field `{}` to no column; it is left out",
                        field.name
                    ),
                    "add it to main_sql's columns if the table should have it",
                );
            }
        }
        out
    }

    /// With no columns at all (a `空操作` target), the record id keeps the map valid.
    fn fallback_columns(&mut self, target: &Node, columns: &mut Vec<Column>) {
        let id = self
            .source_id
            .clone()
            .or_else(|| self.source_number.clone());
        let (name, expr) = match &id {
            Some(id) => (id.replace('.', "_"), self.field_ref(id)),
            None => ("id".to_owned(), "null".to_owned()),
        };
        let todo = self.error(
            target,
            codes::NO_VALUE,
            format!("the target names no columns; the table gets the record id `{name}` only"),
            "list the columns to keep in the map",
        );
        self.draft.map.push(todo);
        columns.push(Column {
            name,
            expr,
            ty: None,
            label: None,
            todo: Vec::new(),
        });
    }

    fn fallback_map(&mut self) {
        self.draft.map.push(Line::Assign {
            keyword: "",
            name: "id".to_owned(),
            value: "null".to_owned(),
            comment: None,
        });
    }

    /// The table a scheme without `main_sql` writes to: the API name without its vendor
    /// prefix, as the platform names its tables (`jushuitan.refund.list.query` →
    /// `refund_list_query`).
    fn default_table(&self) -> String {
        let endpoint = self
            .vendor
            .as_ref()
            .map_or("imported", |v| v.endpoint.as_str());
        let trimmed = endpoint
            .trim_start_matches("jushuitan.")
            .trim_start_matches("wdt.")
            .trim_start_matches("/open/")
            .trim_start_matches("/v1.0/")
            .trim_start_matches('/');
        let name: String = trimmed
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let name = name.trim_matches('_').to_owned();
        if name.is_empty() {
            "imported".to_owned()
        } else {
            name
        }
    }

    /// A request field's name and settings; `None` (reported) without a name.
    pub(super) fn field_parts<'n>(&mut self, field: &'n Node) -> Option<(String, FieldSpec<'n>)> {
        if !matches!(field.value, Value::Object(_)) {
            let line = self.wrong_type(
                field,
                "a request field",
                "an object with `field` and `value`",
            );
            self.field_todo(line);
            return None;
        }
        for member in field.members() {
            if !FIELD_KEYS.contains(&member.key.as_str()) {
                let line = self.unknown_key(&member.node, "a request field", FIELD_KEYS);
                self.field_todo(line);
            }
        }
        let name = field
            .get("field")
            .and_then(Node::text)
            .map(|s| s.trim().to_owned());
        let Some(name) = name.filter(|n| is_name(n)) else {
            let line = self.error(
                field,
                codes::MISSING_KEY,
                "a request field without a usable `field` name is left out".to_owned(),
                "every field needs \"field\": \"<name>\"",
            );
            self.field_todo(line);
            return None;
        };
        let label = field
            .get("label")
            .and_then(Node::text)
            .filter(|l| !l.trim().is_empty() && l.trim() != name);
        Some((
            name,
            FieldSpec {
                label,
                ty: field.get("type").and_then(Node::text),
                value: field.get("value").or_else(|| field.get("default")),
                children: field.get("children"),
                parser: field.get("parser"),
            },
        ))
    }
}
