//! The source half of a scheme: the request and its fields, paging, flatten, renames,
//! the schedule and the remedy run.

use super::*;

impl Translator {
    /// Translates the source half.
    pub(super) fn source(&mut self, source: &Node, connector: Option<ConnectorKind>) {
        if !matches!(source.value, Value::Object(_)) {
            let line = self.error(
                source,
                codes::NOT_A_SCHEME,
                format!("the source half is {}, not an object", source.kind()),
                "a source half looks like {\"api\": \"erp.warehouse.get\", \"request\": [...]}",
            );
            self.draft.source_head = "http \"/\"".to_owned();
            self.draft.source.push(Line::stmt("connection api"));
            self.draft.source.push(line);
            return;
        }
        for member in source.members() {
            if !SOURCE_KEYS.contains(&member.key.as_str()) {
                let line = self.unknown_key(&member.node, "the source", SOURCE_KEYS);
                self.draft.source.push(line);
            }
        }
        let api = source.get("api").and_then(Node::text);
        let vendor = match (&api, connector) {
            (Some(api), Some(kind)) => Some(vendor::chosen(kind, api)),
            (Some(api), None) => vendor::infer(api),
            (None, _) => None,
        };
        let vendor = match (vendor, &api) {
            (Some(v), _) => v,
            (None, api_text) => {
                let line = match (api_text, source.get("api")) {
                    (Some(api), Some(node)) => self.error(
                        node,
                        codes::UNKNOWN_VENDOR,
                        format!("the API `{api}` does not tell its vendor; the spec uses the plain `http` connector"),
                        "pass --connector jushuitan|qimen|jikeyun|wdt|dingtalk_yida|http",
                    ),
                    _ => self.error(
                        source,
                        codes::MISSING_KEY,
                        "the source has no `api`".to_owned(),
                        "add the API name, e.g. \"api\": \"erp.warehouse.get\"",
                    ),
                };
                self.draft.source.push(line);
                vendor::Vendor {
                    reason: "the API name tells no vendor",
                    ..vendor::chosen(ConnectorKind::Http, api_text.as_deref().unwrap_or("/"))
                }
            }
        };
        self.draft.source_head = format!("{} {}", vendor.kind.keyword(), quote(&vendor.endpoint));
        self.draft.source.insert(
            0,
            Line::stmt_with(
                format!("connection {}", vendor.connection),
                Some(vendor.reason.to_owned()),
            ),
        );
        if let (Some(doubt), Some(node)) = (&vendor.doubt, source.get("api")) {
            let line = self.error(
                node,
                codes::UNKNOWN_ENDPOINT,
                doubt.clone(),
                "write the open API's path as the source's endpoint, or import without --connector to keep the Qimen method",
            );
            self.draft.source.push(line);
        }
        self.vendor = Some(vendor.clone());

        if let Some(method) = source.get("method") {
            if let Some(m) = self.text_of(method, "`method`") {
                let m = m.trim().to_ascii_uppercase();
                match m.as_str() {
                    "POST" | "" => {}
                    "GET" | "PUT" | "PATCH" | "DELETE" => {
                        self.draft.source.push(Line::stmt(format!("method {m}")));
                    }
                    other => {
                        let line = self.error(
                            method,
                            codes::UNKNOWN_KEY,
                            format!("the HTTP method `{other}` is not one qsync sends"),
                            "use GET or POST",
                        );
                        self.draft.source.push(line);
                    }
                }
            }
        }

        // Request fields: params, paging and the window bounds.
        let mut paging = Paging::default();
        let mut params = Vec::new();
        let mut uses_window = false;
        if let Some(request) = source.get("request") {
            let fields = self.request_fields(request);
            let mut seen = BTreeSet::new();
            for field in fields {
                if let Some(line) =
                    self.source_field(field, &[], &mut paging, &mut seen, &mut uses_window)
                {
                    params.push(line);
                }
            }
        }
        if uses_window {
            self.draft.source.push(Line::stmt_with(
                "window",
                Some(
                    "LAST_SYNC_TIME/CURRENT_TIME: the first run needs --since, or add initial \"yyyy-MM-dd HH:mm:ss\""
                        .to_owned(),
                ),
            ));
        }
        self.draft.source.extend(params);
        self.paginate(source, &paging, &vendor);

        let check = self.flag(source.get("idCheck"), "`idCheck`", Block::Source);
        if let Some(id) = source.get("id") {
            if let Some(id) = self.text_of(id, "`id`").filter(|s| !s.trim().is_empty()) {
                let number = source.get("number").and_then(Node::text);
                let comment = match (check, &number) {
                    (true, Some(n)) => {
                        format!("idCheck: duplicates of an id are dropped; number: {n}")
                    }
                    (true, None) => "idCheck: duplicates of an id are dropped".to_owned(),
                    (false, Some(n)) => format!("number: {n}"),
                    (false, None) => String::new(),
                };
                self.draft
                    .source
                    .push(Line::stmt_with(format!("id {}", id.trim()), Some(comment)));
                self.source_id = Some(id.trim().to_owned());
            }
        }
        self.source_number = source
            .get("number")
            .and_then(Node::text)
            .map(|s| s.trim().to_owned());

        self.flatten(source);
        self.renames(source, &vendor);
        if let Some(cron) = source.get("crontab") {
            self.schedule(cron, "@schedule");
        }
        if let Some(remedy) = source.get("omissionRemedy") {
            self.remedy(remedy);
        }
    }

    /// The fields of a `request`: an array of field objects, or an object of
    /// `name: value` pairs (as the WDT case study writes `pager{}` and `params{}`).
    fn request_fields<'n>(&mut self, request: &'n Node) -> Vec<&'n Node> {
        match &request.value {
            Value::Array(items) => items.iter().collect(),
            Value::Object(members) => members.iter().map(|m| &m.node).collect(),
            Value::Null => Vec::new(),
            _ => {
                let line = self.wrong_type(request, "`request`", "an array of fields");
                self.draft.source.push(line);
                Vec::new()
            }
        }
    }

    /// One request field (recursing into `children`); the line to write, if any.
    fn source_field(
        &mut self,
        field: &Node,
        parents: &[String],
        paging: &mut Paging,
        seen: &mut BTreeSet<String>,
        uses_window: &mut bool,
    ) -> Option<Line> {
        let (name, spec) = self.field_parts(field)?;
        let mut path = parents.to_vec();
        path.push(name.clone());
        let dotted = path.join(".");
        if !seen.insert(dotted.clone()) {
            let line = self.error(
                field,
                codes::DUPLICATE_FIELD,
                format!("the request field `{dotted}` is given twice"),
                "keep one of them",
            );
            return Some(line);
        }
        let label = spec.label.clone();
        let param = self.param_value(&spec, &path, paging, uses_window);
        if let Param::Value(v) = &param {
            if v.contains("LAST_SYNC_TIME") && self.window_start.is_none() {
                self.window_start = Some(dotted.clone());
            }
        }
        let raw = spec.value.and_then(Node::text).unwrap_or_default();
        if matches!(param, Param::Broken) && raw.contains("LAST_SYNC_TIME") {
            self.broken_window_start = Some(dotted.clone());
        }
        match param {
            Param::Value(value) if parents.is_empty() => {
                let renamed = self.vendor.as_ref().and_then(|v| {
                    v.renamed_params
                        .iter()
                        .find(|(old, _)| *old == dotted)
                        .map(|(_, new)| *new)
                });
                let (name, comment) = match renamed {
                    Some(new) => (
                        new.to_owned(),
                        Some(format!(
                            "{}the scheme's `{dotted}`, as this endpoint names it",
                            label.map(|l| format!("{l}; ")).unwrap_or_default()
                        )),
                    ),
                    None => (dotted, label),
                };
                Some(Line::Assign {
                    keyword: "param",
                    name,
                    value,
                    comment,
                })
            }
            Param::Value(value) => Some(Line::Assign {
                keyword: "",
                name: name.clone(),
                value,
                comment: label,
            }),
            Param::Page(first) => {
                paging.page = Some((dotted, first));
                None
            }
            Param::Size(size) => {
                paging.size = Some((dotted, size));
                None
            }
            Param::Unsent => Some(Line::Comment(format!(
                "{dotted}{}: no value in the scheme, not sent",
                label.map(|l| format!(" ({l})")).unwrap_or_default()
            ))),
            Param::Broken | Param::Paging => None,
        }
    }

    /// The value of one request field, as spec text.
    fn param_value(
        &mut self,
        spec: &FieldSpec<'_>,
        path: &[String],
        paging: &mut Paging,
        uses_window: &mut bool,
    ) -> Param {
        let name = path.last().cloned().unwrap_or_default();
        let kind = self.vendor.as_ref().map(|v| v.kind);
        if let Some(children) = spec.children {
            let mut members = Vec::new();
            let mut seen = BTreeSet::new();
            let paged_before = (paging.page.is_some(), paging.size.is_some());
            for child in children.elements() {
                let line = self.source_field(child, path, paging, &mut seen, uses_window);
                match line {
                    Some(Line::Assign { name, value, .. }) => {
                        members.push(format!("{}: {value}", object_key(&name)));
                    }
                    Some(line @ Line::Todo { .. }) => self.draft.source.push(line),
                    _ => {}
                }
            }
            if children.elements().is_empty() && !matches!(children.value, Value::Array(_)) {
                let line = self.wrong_type(children, "`children`", "an array of fields");
                self.draft.source.push(line);
                return Param::Broken;
            }
            if members.is_empty() {
                let paged = (paging.page.is_some(), paging.size.is_some()) != paged_before;
                return if paged { Param::Paging } else { Param::Unsent };
            }
            let object = format!("{{ {} }}", members.join(", "));
            let as_string = kind.is_some_and(|k| JSON_STRING_PARAMS.contains(&(k, name.as_str())));
            return Param::Value(if as_string {
                format!("json({object})")
            } else {
                object
            });
        }
        let Some(value_node) = spec.value else {
            return Param::Unsent;
        };
        let text = match &value_node.value {
            Value::String(s) => s.clone(),
            Value::Null => return Param::Unsent,
            Value::Number(_) | Value::Bool(_) | Value::Array(_) | Value::Object(_) => {
                return Param::Value(render_value(&value_node.to_json()))
            }
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Param::Unsent;
        }
        match trimmed {
            "{PAGINATION_START_PAGE}" => return Param::Page(None),
            "{PAGINATION_PAGE_SIZE}" => return Param::Size(None),
            _ => {}
        }
        if paging.page.is_none() && PAGE_NAMES.contains(&name.as_str()) {
            if let Ok(first) = trimmed.parse::<i64>() {
                return Param::Page(Some(first));
            }
        }
        if paging.size.is_none() && SIZE_NAMES.contains(&name.as_str()) {
            if let Ok(size) = trimmed.parse::<u32>() {
                return Param::Size(Some(size));
            }
        }
        let rendered = if trimmed.contains("{{") || has_placeholder(trimmed) {
            match self.request_template(value_node, &text) {
                Some(t) => {
                    let t = self.gmt_bounds(value_node, &name, t);
                    *uses_window |= ["LAST_SYNC_TIME", "CURRENT_TIME", "window."]
                        .iter()
                        .any(|v| t.contains(v));
                    quote(&t)
                }
                None => return Param::Broken,
            }
        } else if crate::config::is_secret_key(&name) {
            let connection = self.vendor.as_ref().map_or("api", |v| v.connection);
            let var = format!("{}_{}", connection.to_ascii_uppercase(), env_name(&name));
            self.warn(
                value_node,
                codes::SECRET_MOVED,
                format!("the value of `{name}` is a credential: the spec reads it from the environment variable `{var}`"),
                &format!("set {var} where qsync runs; specs live in git, credentials do not"),
            );
            let value = quote(&format!("{{{{ env.{var} }}}}"));
            self.env.push(var);
            value
        } else {
            match spec.ty.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("int" | "integer" | "long" | "number" | "float" | "double" | "decimal")
                    if serde_json::from_str::<serde_json::Number>(trimmed).is_ok() =>
                {
                    trimmed.to_owned()
                }
                Some("bool" | "boolean") if matches!(trimmed, "true" | "false") => {
                    trimmed.to_owned()
                }
                Some(ty) if spec.parser.is_none() && !value_fits(ty, trimmed) => {
                    let line = self.wrong_type(
                        value_node,
                        &format!("the value of `{name}` (type `{ty}`)"),
                        &format!("{}; it is sent as that string", expected_value(ty)),
                    );
                    self.draft.source.push(line);
                    quote(&text)
                }
                _ => quote(&text),
            }
        };
        match spec.parser {
            None => Param::Value(rendered),
            Some(parser) => match self.parser(parser) {
                Some(separator) => {
                    Param::Value(format!("split({rendered}, {})", quote(&separator)))
                }
                None => Param::Broken,
            },
        }
    }

    /// `{"name": "StringToArray", "params": ","}` → the separator.
    fn parser(&mut self, parser: &Node) -> Option<String> {
        let name = parser
            .get("name")
            .and_then(Node::text)
            .or_else(|| parser.text());
        match name.as_deref() {
            Some("StringToArray") => Some(
                parser
                    .get("params")
                    .and_then(Node::text)
                    .unwrap_or_else(|| ",".to_owned()),
            ),
            other => {
                let line = self.error(
                    parser,
                    codes::UNKNOWN_PARSER,
                    format!(
                        "the parser `{}` has no qsync equivalent; the field is not sent",
                        other.unwrap_or("?")
                    ),
                    "StringToArray is the parser qsync knows (split(value, \",\"))",
                );
                self.draft.source.push(line);
                None
            }
        }
    }

    /// A request value with `{{ ... }}`: spaced the house way and compiled as `check`
    /// will; `None` (reported) when it cannot be.
    fn request_template(&mut self, node: &Node, text: &str) -> Option<String> {
        if has_placeholder(text) {
            let line = self.error(
                node,
                codes::BAD_TEMPLATE,
                format!("`{}` uses a platform placeholder qsync does not know; the field is not sent", text.trim()),
                "qsync knows {PAGINATION_START_PAGE}, {PAGINATION_PAGE_SIZE} and {{ ... }} templates",
            );
            self.draft.source.push(line);
            return None;
        }
        let spaced = space_template(text);
        let problems =
            template::validate(&spaced, template::VARIABLES, true, template::World::Request);
        if let Some(problem) = problems.first() {
            let why = match problem {
                template::TemplateProblem::Syntax { message, .. } => message.clone(),
                template::TemplateProblem::UnknownVariable { name } => {
                    format!("`{name}` is not a variable qsync has")
                }
                template::TemplateProblem::Render {
                    message,
                    name,
                    candidates,
                    ..
                } => match name
                    .as_deref()
                    .and_then(|n| crate::check::closest(n, candidates))
                {
                    Some(s) => format!("{message} (did you mean `{s}`?)"),
                    None => message.clone(),
                },
            };
            let line = self.error(
                node,
                codes::BAD_TEMPLATE,
                format!("the template `{}` does not compile: {why}; the field is not sent", text.trim()),
                "variables: LAST_SYNC_TIME, CURRENT_TIME, DAYS_AGO_<n>, window.start/end, env.NAME; filters: datetime, date, utc, timestamp, millis",
            );
            self.draft.source.push(line);
            return None;
        }
        Some(spaced)
    }

    /// DingTalk Yida takes its `...TimeGMT` bounds in GMT (PROTOCOLS.md §5), and the
    /// platform's `datetime` gives the source time zone: the spec converts with `utc`.
    fn gmt_bounds(&mut self, node: &Node, name: &str, template: String) -> String {
        let yida = self
            .vendor
            .as_ref()
            .is_some_and(|v| v.kind == ConnectorKind::DingtalkYida);
        if !(yida && name.ends_with("GMT") && template.contains("| datetime }}")) {
            return template;
        }
        self.warn(
            node,
            codes::GMT_BOUNDS,
            format!("`{name}` is a GMT time and `datetime` gives the source time zone: the spec converts with `utc`"),
            "DingTalk Yida reads its *TimeGMT bounds in GMT",
        );
        template.replace("| datetime }}", "| utc }}")
    }

    /// Emits `@paginate` from the page fields and `pagination.pageSize`.
    fn paginate(&mut self, source: &Node, paging: &Paging, vendor: &Vendor) {
        let declared = source.get("pagination");
        let declared_size = declared.and_then(|p| {
            for member in p.members() {
                if member.key != "pageSize" {
                    let line = self.unknown_key(&member.node, "`pagination`", &["pageSize"]);
                    self.draft.source.push(line);
                }
            }
            p.get("pageSize")
        });
        let size_node = declared_size.or(declared);
        let declared_size = match declared_size {
            Some(node) => match node.text().and_then(|t| t.trim().parse::<u32>().ok()) {
                Some(n) if n > 0 => Some(n),
                _ => {
                    let line =
                        self.wrong_type(node, "`pagination.pageSize`", "a positive whole number");
                    self.draft.source.push(line);
                    None
                }
            },
            None => None,
        };
        let Some((page, first)) = &paging.page else {
            if paging.size.is_some() || declared.is_some() {
                let node = size_node.unwrap_or(source);
                let line = self.error(
                    node,
                    codes::PAGINATION,
                    "the scheme pages, but no request field is the page number ({PAGINATION_START_PAGE}); only the first page is read".to_owned(),
                    "add the page field, or write @paginate by hand",
                );
                self.draft.source.push(line);
            }
            return;
        };
        let info = crate::connectors::endpoint_info(vendor.kind, &vendor.endpoint);
        let literal = paging.size.as_ref().and_then(|(_, s)| *s);
        let mut size = declared_size.or(literal).unwrap_or(50);
        if let Some(max) = info.max_page_size {
            if size > max {
                let node = size_node.unwrap_or(source);
                self.warn(
                    node,
                    codes::PAGE_SIZE_CLAMPED,
                    format!("the page size {size} is over the vendor's maximum of {max}: the spec asks for {max}"),
                    "the vendor refuses larger pages",
                );
                size = max;
            }
        }
        let mut line = format!("@paginate {page} size {size}");
        if let Some(first) = first {
            if info.page_base.unwrap_or(1) != *first {
                line.push_str(&format!(" from {first}"));
            }
        }
        if let Some((size_param, _)) = &paging.size {
            let parts: Vec<String> = page.split('.').map(str::to_owned).collect();
            if crate::check::default_size_param(&parts).join(".") != *size_param {
                line.push_str(&format!(" per {size_param}"));
            }
        }
        self.draft.source.push(Line::stmt(line));
    }

    fn flatten(&mut self, source: &Node) {
        let Some(flat) = source.get("beatFlat") else {
            return;
        };
        let items: Vec<&Node> = match &flat.value {
            Value::Array(items) => items.iter().collect(),
            Value::String(name) => {
                let line = self.wrong_type(
                    flat,
                    "`beatFlat`",
                    &format!("an array of field names; it is read as [{}]", quote(name)),
                );
                self.draft.directives.push(line);
                vec![flat]
            }
            _ => {
                let line = self.wrong_type(flat, "`beatFlat`", "an array of field names");
                self.draft.directives.push(line);
                return;
            }
        };
        for item in items {
            match item.text().filter(|s| is_path(s.trim())) {
                Some(name) => {
                    self.flattened.push(name.trim().to_owned());
                    self.draft.directives.push(Line::stmt_with(
                        format!("@flatten {}", name.trim()),
                        Some("beatFlat: one row per element".to_owned()),
                    ));
                }
                None => {
                    let line = self.wrong_type(item, "a `beatFlat` entry", "a field name");
                    self.draft.directives.push(line);
                }
            }
        }
    }

    fn renames(&mut self, source: &Node, vendor: &Vendor) {
        let Some(list) = source.get("formatResponse") else {
            return;
        };
        if !matches!(list.value, Value::Array(_)) {
            let line = self.wrong_type(list, "`formatResponse`", "an array of {old, new, format}");
            self.draft.directives.push(line);
            return;
        }
        for item in list.elements() {
            for member in item.members() {
                if !FORMAT_KEYS.contains(&member.key.as_str()) {
                    let line =
                        self.unknown_key(&member.node, "a `formatResponse` entry", FORMAT_KEYS);
                    self.draft.directives.push(line);
                }
            }
            let old = item
                .get("old")
                .and_then(Node::text)
                .filter(|s| is_path(s.trim()));
            let new = item
                .get("new")
                .and_then(Node::text)
                .filter(|s| is_name(s.trim()));
            let (Some(old), Some(new)) = (old, new) else {
                let line = self.error(
                    item,
                    codes::MISSING_KEY,
                    "a `formatResponse` entry needs `old` (a field) and `new` (a name)".to_owned(),
                    "e.g. {\"old\": \"dateField_x\", \"new\": \"datetime_new\", \"format\": \"date\"}",
                );
                self.draft.directives.push(line);
                continue;
            };
            let old = record_field(vendor.kind, old.trim());
            let mut text = format!("@rename {old} -> {}", new.trim());
            if let Some(format) = item.get("format") {
                let name = format.text().unwrap_or_default();
                match column_type(&name) {
                    TypeMatch::Type(ty) => text.push_str(&format!(" : {ty}")),
                    TypeMatch::Untyped => {}
                    TypeMatch::Unknown => {
                        let line = self.error(
                            format,
                            codes::UNKNOWN_FORMAT,
                            format!("the format `{name}` has no qsync type; the field is renamed, not converted"),
                            "formats: string, int, bigint, float, decimal, date, datetime, boolean, json",
                        );
                        self.draft.directives.push(line);
                    }
                }
            }
            self.renamed.insert(new.trim().to_owned());
            self.draft
                .directives
                .push(Line::stmt_with(text, Some("formatResponse".to_owned())));
        }
    }

    fn schedule(&mut self, cron: &Node, directive: &str) -> Option<String> {
        let text = match cron.text() {
            Some(t) => t.trim().to_owned(),
            None => {
                let line = self.wrong_type(cron, "`crontab`", "a cron string");
                self.draft.directives.push(line);
                return None;
            }
        };
        if let Err(why) = crate::check::parse_cron(&text) {
            let line = self.error(
                cron,
                codes::BAD_CRON,
                format!("`{text}` is not a cron expression ({why}); no {directive} is written"),
                "5 fields (minute hour day month weekday), or 6 with seconds, e.g. \"2 1 * * *\"",
            );
            self.draft.directives.push(line);
            return None;
        }
        if directive == "@schedule" {
            self.draft.directives.push(Line::stmt_with(
                format!("@schedule {}", quote(&text)),
                Some("crontab".to_owned()),
            ));
        }
        Some(text)
    }

    fn remedy(&mut self, remedy: &Node) {
        let window_start = self.window_start.clone();
        let window_start = window_start.as_deref();
        if !matches!(remedy.value, Value::Object(_)) {
            let line = self.wrong_type(remedy, "`omissionRemedy`", "an object");
            self.draft.directives.push(line);
            return;
        }
        for member in remedy.members() {
            if !REMEDY_KEYS.contains(&member.key.as_str()) {
                let line = self.unknown_key(&member.node, "`omissionRemedy`", REMEDY_KEYS);
                self.draft.directives.push(line);
            }
        }
        let mut lookback = None;
        if let Some(over) = remedy.get("takeOverRequest") {
            for field in over.elements() {
                let name = field.get("field").and_then(Node::text).unwrap_or_default();
                let value = field.get("value").and_then(Node::text).unwrap_or_default();
                let days = days_ago(&value);
                // The take-over names the field, nested ones by their own name.
                let names = |w: &str| w == name.trim() || w.rsplit('.').next() == Some(name.trim());
                let start = window_start.is_some_and(names);
                if window_start.is_none() && self.broken_window_start.as_deref().is_some_and(names)
                {
                    // The window's field is already reported: the remedy over it is
                    // left out without a finding of its own.
                    self.draft.directives.push(Line::Comment(format!(
                        "omissionRemedy is left out: its field `{name}` did not translate (see its TODO)"
                    )));
                    return;
                }
                match (start, days) {
                    (true, Some(n)) => lookback = Some(n),
                    _ => {
                        let line = self.error(
                            field,
                            codes::REMEDY,
                            format!("the remedy sets `{name}` to `{value}`; qsync's remedy re-reads from the window start ({}) a number of days back, and nothing else", window_start.unwrap_or("no window")),
                            "the remedy's take-over must be the LAST_SYNC_TIME field set to {{DAYS_AGO_<n>|datetime}}",
                        );
                        self.draft.directives.push(line);
                    }
                }
            }
            if !matches!(over.value, Value::Array(_)) {
                let line = self.wrong_type(over, "`takeOverRequest`", "an array of fields");
                self.draft.directives.push(line);
            }
        }
        let cron = match remedy.get("crontab") {
            Some(cron) => self.schedule(cron, "@remedy"),
            None => {
                let line = self.error(
                    remedy,
                    codes::REMEDY,
                    "the omission remedy has no `crontab`; qsync runs a remedy on its own schedule, so none is written".to_owned(),
                    "add \"crontab\" to omissionRemedy, or run `qsync run --remedy` by hand",
                );
                self.draft.directives.push(line);
                None
            }
        };
        match (cron, lookback) {
            (Some(cron), Some(days)) => self.draft.directives.push(Line::stmt_with(
                format!("@remedy {} lookback {days}d", quote(&cron)),
                Some("omissionRemedy: re-read the last days on its own schedule".to_owned()),
            )),
            (Some(cron), None) if remedy.get("takeOverRequest").is_none() => {
                let line = self.error(
                    remedy,
                    codes::REMEDY,
                    format!("the omission remedy on \"{cron}\" says nothing of how far back it reads (no `takeOverRequest`)"),
                    "add a takeOverRequest of the LAST_SYNC_TIME field with {{DAYS_AGO_<n>|datetime}}",
                );
                self.draft.directives.push(line);
            }
            _ => {}
        }
    }
}
