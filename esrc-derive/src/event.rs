//! `#[derive(Event)]` and `#[derive(Versioned)]`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields};

use crate::attrs::TypeArgs;

pub(crate) fn expand(input: &DeriveInput, event: bool) -> syn::Result<TokenStream> {
    let what = if event { "Event" } else { "Versioned" };
    if let Data::Union(data) = &input.data {
        return Err(syn::Error::new(
            data.union_token.span,
            format!("{what} cannot be derived for a union: use an enum or a struct"),
        ));
    }
    let args = TypeArgs::parse(&input.attrs, event)?;
    let krate = args.krate();
    let ident = &input.ident;
    let (impl_generics, type_generics, where_clause) = input.generics.split_for_impl();
    let version = args.version.map_or(1, |(version, _)| version);

    let decode = args.previous.as_ref().map(|previous| {
        quote! {
            fn decode<'__de>(
                version: u32,
                payload: &'__de [u8],
            ) -> ::core::result::Result<Self, #krate::DecodeError>
            where
                Self: #krate::__private::serde::Deserialize<'__de>,
            {
                #krate::upcast::<Self, #previous>(version, payload)
            }
        }
    });
    let versioned = quote! {
        #[automatically_derived]
        impl #impl_generics #krate::Versioned for #ident #type_generics #where_clause {
            const VERSION: u32 = #version;
            #decode
        }
    };
    if !event {
        return Ok(versioned);
    }

    let name = event_name(args.name.as_ref(), args.keep_suffix.is_some(), ident)?;
    let variant = variant_fn(input);
    let tags = tags_fn(input)?;
    let aggregate = args.aggregate.as_ref().map(|aggregate| {
        quote! {
            #[automatically_derived]
            impl #impl_generics #krate::AggregateEvent for #ident #type_generics #where_clause {
                type Aggregate = #aggregate;
            }
        }
    });
    Ok(quote! {
        #versioned
        #[automatically_derived]
        impl #impl_generics #krate::Event for #ident #type_generics #where_clause {
            const NAME: &'static str = #name;
            #variant
            #tags
        }
        #aggregate
    })
}

/// The event's category: the name given, or the type's name without its `Event` suffix
/// (unless `keep_suffix`), checked against the rule every esrc name follows.
fn event_name(
    name: Option<&syn::LitStr>,
    keep_suffix: bool,
    ident: &syn::Ident,
) -> syn::Result<String> {
    match name {
        Some(name) => Ok(name.value()),
        None => {
            let type_name = ident.to_string();
            let name = match keep_suffix {
                true => type_name,
                false => type_name
                    .strip_suffix("Event")
                    .filter(|rest| !rest.is_empty())
                    .unwrap_or(&type_name)
                    .to_owned(),
            };
            if let Err(invalid) = esrc_name::check(&name) {
                let reason = invalid.reason();
                return Err(syn::Error::new(
                    ident.span(),
                    format!(
                        "invalid event name: {reason}: set a valid name with #[esrc(name = \"...\")]"
                    ),
                ));
            }
            Ok(name)
        }
    }
}

/// `Event::variant`: the enum variant's name, or the struct's.
fn variant_fn(input: &DeriveInput) -> TokenStream {
    match &input.data {
        Data::Enum(data) => {
            let arms = data.variants.iter().map(|variant| {
                let v = &variant.ident;
                let text = v.to_string();
                let pattern = match &variant.fields {
                    Fields::Named(_) => quote!(Self::#v { .. }),
                    Fields::Unnamed(_) => quote!(Self::#v(..)),
                    Fields::Unit => quote!(Self::#v),
                };
                quote!(#pattern => #text,)
            });
            quote! {
                fn variant(&self) -> &'static str {
                    match self {
                        #(#arms)*
                    }
                }
            }
        }
        _ => {
            let text = input.ident.to_string();
            quote! {
                fn variant(&self) -> &'static str {
                    #text
                }
            }
        }
    }
}

/// `Event::tags`: `key:value` for every field marked `#[esrc(tag)]` (the key is the
/// field's name) or `#[esrc(tag = "key")]`, the value its `Display`; nothing when no
/// field is marked.
fn tags_fn(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut arms = Vec::new();
    let mut any = false;
    let mut arm = |pattern: TokenStream, fields: &Fields| -> syn::Result<()> {
        let mut bindings = Vec::new();
        let mut values = Vec::new();
        for (index, field) in fields.iter().enumerate() {
            let Some(key) = field_tag(field)? else {
                continue;
            };
            let binding = quote::format_ident!("__tag{index}");
            let member = match &field.ident {
                Some(ident) => quote!(#ident),
                None => {
                    let index = syn::Index::from(index);
                    quote!(#index)
                }
            };
            bindings.push(quote!(#member: #binding));
            values.push(quote!(::std::format!("{}:{}", #key, #binding)));
        }
        if !values.is_empty() {
            any = true;
            arms.push(quote!(#pattern { #(#bindings,)* .. } => ::std::vec![#(#values),*],));
        }
        Ok(())
    };
    match &input.data {
        Data::Enum(data) => {
            for variant in &data.variants {
                let v = &variant.ident;
                arm(quote!(Self::#v), &variant.fields)?;
            }
        }
        Data::Struct(data) => arm(quote!(Self), &data.fields)?,
        Data::Union(_) => {}
    }
    if !any {
        return Ok(TokenStream::new());
    }
    Ok(quote! {
        fn tags(&self) -> ::std::vec::Vec<::std::string::String> {
            #[allow(unreachable_patterns)]
            match self {
                #(#arms)*
                _ => ::std::vec::Vec::new(),
            }
        }
    })
}

/// The tag key of a field marked `#[esrc(tag)]` or `#[esrc(tag = "key")]`.
fn field_tag(field: &syn::Field) -> syn::Result<Option<String>> {
    let mut key = None;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("esrc")) {
        attr.parse_nested_meta(|meta| {
            if !meta.path.is_ident("tag") {
                return Err(meta.error("unknown esrc attribute on a field: only `tag` or `tag = \"key\"` is allowed here"));
            }
            let given = if meta.input.peek(syn::Token![=]) {
                let lit: syn::LitStr = meta.value()?.parse()?;
                if let Err(invalid) = esrc_name::check(&lit.value()) {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!("invalid tag key: {}", invalid.reason()),
                    ));
                }
                lit.value()
            } else {
                match &field.ident {
                    Some(ident) => ident.to_string().trim_start_matches("r#").to_owned(),
                    None => {
                        return Err(meta.error(
                            "a tagged field without a name needs its key: `#[esrc(tag = \"key\")]`",
                        ));
                    }
                }
            };
            key = Some(given);
            Ok(())
        })?;
    }
    Ok(key)
}
