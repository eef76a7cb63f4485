//! Parsing `#[esrc(...)]` attributes, with errors that point at the offending tokens.

use proc_macro_crate::FoundCrate;
use proc_macro2::{Ident, Span};
use quote::quote;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, LitInt, LitStr, Path, Type};

/// The attributes a type may carry.
#[derive(Default)]
pub(crate) struct TypeArgs {
    pub(crate) name: Option<LitStr>,
    pub(crate) version: Option<(u32, Span)>,
    pub(crate) previous: Option<Type>,
    pub(crate) krate: Option<Path>,
    pub(crate) keep_suffix: Option<Span>,
    pub(crate) aggregate: Option<Type>,
}

impl TypeArgs {
    pub(crate) fn parse(attrs: &[Attribute], allow_name: bool) -> syn::Result<Self> {
        let mut args = TypeArgs::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("esrc")) {
            attr.parse_nested_meta(|meta| args.take(&meta, allow_name))?;
        }
        args.check()?;
        Ok(args)
    }

    /// Takes one `key` or `key = value` of `#[esrc(...)]`.
    fn take(&mut self, meta: &ParseNestedMeta<'_>, allow_name: bool) -> syn::Result<()> {
        let key = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        if !allow_name && matches!(key.as_str(), "name" | "keep_suffix" | "aggregate") {
            return Err(meta.error(match key.as_str() {
                "name" => {
                    "`name` applies to events; snapshot state is named by its aggregate's event"
                        .to_owned()
                }
                other => format!("`{other}` applies to events"),
            }));
        }
        let given = match key.as_str() {
            "name" => self.name.is_some(),
            "version" => self.version.is_some(),
            "previous" => self.previous.is_some(),
            "crate" => self.krate.is_some(),
            "keep_suffix" => self.keep_suffix.is_some(),
            "aggregate" => self.aggregate.is_some(),
            _ => false,
        };
        if given {
            return Err(meta.error(format!("`{key}` is given twice: keep one")));
        }
        match key.as_str() {
            "name" => self.name = Some(name_value(meta)?),
            "version" => self.version = Some(version_value(meta)?),
            "previous" => self.previous = Some(meta.value()?.parse()?),
            "crate" => {
                let path: LitStr = meta.value()?.parse()?;
                self.krate = Some(path.parse()?);
            }
            "keep_suffix" => self.keep_suffix = Some(meta.path.span()),
            "aggregate" => self.aggregate = Some(meta.value()?.parse()?),
            "event" => return Err(meta.error(old_event_attribute(meta)?)),
            "serde" => return Err(meta.error(old_serde_attribute(meta)?)),
            "ignore" => {
                return Err(
                    meta.error("`ignore` goes on a variant of an EventGroup, not on a type")
                );
            }
            _ => {
                let expected = if allow_name {
                    "`name`, `keep_suffix`, `aggregate`, `version`, `previous` or `crate`"
                } else {
                    "`version`, `previous` or `crate`"
                };
                return Err(meta.error(format!("unknown esrc attribute: expected {expected}")));
            }
        }
        Ok(())
    }

    /// Refuses attributes that contradict each other.
    fn check(&self) -> syn::Result<()> {
        if let (Some(span), Some(_)) = (self.keep_suffix, &self.name) {
            return Err(syn::Error::new(
                span,
                "`keep_suffix` keeps the type's own name whole; a given `name` is always used as written: remove one",
            ));
        }
        let Some(previous) = &self.previous else {
            return Ok(());
        };
        match self.version {
            None => Err(syn::Error::new(
                previous.span(),
                "`previous` needs this type's own version above the previous one's: add `version = 2` (or higher)",
            )),
            Some((1, span)) => Err(syn::Error::new(
                span,
                "a type with a `previous` version cannot be version 1: use `version = 2` or higher",
            )),
            Some(_) => Ok(()),
        }
    }

    /// The path of the crate the generated code names: `#[esrc(crate = "...")]` if given,
    /// else the facade `esrc` or `esrc-core`, under whatever name the user's Cargo.toml
    /// gives it.
    pub(crate) fn krate(&self) -> proc_macro2::TokenStream {
        if let Some(path) = &self.krate {
            return quote!(#path);
        }
        for (package, own_name) in [("esrc", "esrc"), ("esrc-core", "esrc_core")] {
            match proc_macro_crate::crate_name(package) {
                // Inside the crate's own tests and doctests, which name it by its name.
                Ok(FoundCrate::Itself) => {
                    let name = Ident::new(own_name, Span::call_site());
                    return quote!(::#name);
                }
                Ok(FoundCrate::Name(name)) => {
                    let name = Ident::new(&name, Span::call_site());
                    return quote!(::#name);
                }
                Err(_) => {}
            }
        }
        quote!(::esrc_core)
    }
}

/// Only `#[esrc(ignore)]` on group variants.
pub(crate) fn variant_ignored(attrs: &[Attribute]) -> syn::Result<bool> {
    let mut ignored = false;
    for attr in attrs.iter().filter(|a| a.path().is_ident("esrc")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("ignore") {
                ignored = true;
                Ok(())
            } else {
                Err(meta
                    .error("unknown esrc attribute on a variant: only `ignore` is allowed here"))
            }
        })?;
    }
    Ok(ignored)
}

/// The error for esrc 0.1's `#[esrc(event(name = "...", keep_suffix))]`, with today's
/// spelling. esrc 0.1 cut a trailing `Event` off a given name too (unless `keep_suffix`),
/// while today a given name is used as written: the message names the category 0.1
/// stored, so that a migrated type keeps reading its events.
fn old_event_attribute(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<String> {
    let mut name: Option<String> = None;
    let mut keep_suffix = false;
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("name") {
            name = Some(inner.value()?.parse::<LitStr>()?.value());
        } else if inner.path.is_ident("keep_suffix") {
            keep_suffix = true;
        } else {
            return Err(inner.error("esrc 0.1's `event(...)` took only `name` and `keep_suffix`"));
        }
        Ok(())
    })?;
    let moved = "esrc 0.1's `#[esrc(event(...))]` is now written without `event(...)`";
    Ok(match (name, keep_suffix) {
        (Some(name), false) => match name.strip_suffix("Event").filter(|rest| !rest.is_empty()) {
            Some(stored) => format!(
                "{moved}, and a given name is now used as written. esrc 0.1 stored this type's events under the category `{stored}` (it cut `Event` off the name): write `#[esrc(name = \"{stored}\")]` to read them, or `#[esrc(name = \"{name}\")]` for a new category"
            ),
            None => format!("{moved}: write `#[esrc(name = \"{name}\")]`"),
        },
        (Some(name), true) => format!(
            "{moved}, and a given name is now always used as written: write `#[esrc(name = \"{name}\")]`"
        ),
        (None, true) => format!("{moved}: write `#[esrc(keep_suffix)]`"),
        (None, false) => format!("{moved}: remove the empty `event()`"),
    })
}

/// The error for esrc 0.1's `#[esrc(serde(version = N, previous_version = T))]`, with
/// today's spelling.
fn old_serde_attribute(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<String> {
    let mut parts = Vec::new();
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("version") {
            let version: LitInt = inner.value()?.parse()?;
            parts.push(format!("version = {}", version.base10_digits()));
        } else if inner.path.is_ident("previous_version") {
            let previous: Type = inner.value()?.parse()?;
            let previous = quote!(#previous).to_string().replace(' ', "");
            parts.push(format!("previous = {previous}"));
        } else {
            return Err(
                inner.error("esrc 0.1's `serde(...)` took only `version` and `previous_version`")
            );
        }
        Ok(())
    })?;
    Ok(format!(
        "esrc 0.1's `#[esrc(serde(...))]` is now written without `serde(...)`, and `previous_version` is `previous`: write `#[esrc({})]`",
        parts.join(", ")
    ))
}

/// The value of `name = "..."`, checked against the rule every esrc name follows.
fn name_value(meta: &ParseNestedMeta<'_>) -> syn::Result<LitStr> {
    let name: LitStr = meta.value()?.parse()?;
    if let Err(invalid) = esrc_name::check(&name.value()) {
        let reason = invalid.reason();
        return Err(syn::Error::new(
            name.span(),
            format!("invalid event name: {reason}; for example write `#[esrc(name = \"Tab\")]`"),
        ));
    }
    Ok(name)
}

/// The value of `version = N`: a schema version, from 1.
fn version_value(meta: &ParseNestedMeta<'_>) -> syn::Result<(u32, Span)> {
    let version: LitInt = meta.value()?.parse()?;
    let number = version.base10_parse::<u32>()?;
    if number == 0 {
        return Err(syn::Error::new(
            version.span(),
            "schema versions start at 1: write `version = 1` or leave it out",
        ));
    }
    Ok((number, version.span()))
}
