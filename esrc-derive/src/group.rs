//! `#[derive(EventGroup)]`: an enum whose variants each hold one event type.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, GenericParam};

use crate::attrs::{TypeArgs, variant_ignored};

pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new(
            input.ident.span(),
            "EventGroup is derived for an enum with one variant per event type, e.g. \
             `enum Feed { Tab(TabEvent), Kitchen(KitchenEvent) }`",
        ));
    };
    let args = group_args(input)?;
    let krate = args.krate();
    let ident = &input.ident;

    let lifetime = group_lifetime(input)?;

    let mut names = Vec::new();
    let mut arms = Vec::new();
    for variant in &data.variants {
        if variant_ignored(&variant.attrs)? {
            continue;
        }
        let field = match &variant.fields {
            Fields::Unnamed(fields) if fields.unnamed.len() == 1 => &fields.unnamed[0],
            _ => {
                return Err(syn::Error::new(
                    variant.span(),
                    format!(
                        "each EventGroup variant holds exactly one event type, e.g. `{}(TabEvent)`; \
                         mark others with #[esrc(ignore)]",
                        variant.ident
                    ),
                ));
            }
        };
        let ty = &field.ty;
        let v = &variant.ident;
        names.push(quote!(<#ty as #krate::Event>::NAME));
        arms.push(quote! {
            if envelope.category == <#ty as #krate::Event>::NAME {
                return ::core::result::Result::Ok(Self::#v(envelope.decode_payload::<#ty>()?));
            }
        });
    }

    let (group_impl, de) = match &lifetime {
        Some(lifetime) => (quote!(impl<#lifetime> ), quote!(#lifetime)),
        None => (quote!(impl<'__de> ), quote!('__de)),
    };
    let (impl_generics, type_generics, _) = input.generics.split_for_impl();
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #krate::EventGroup for #ident #type_generics {
            const NAMES: &'static [&'static str] = &[#(#names),*];
        }
        #[automatically_derived]
        #group_impl #krate::DecodeGroup<#de> for #ident #type_generics {
            fn decode_group(
                envelope: &#de #krate::Envelope,
            ) -> ::core::result::Result<Self, #krate::Error> {
                #(#arms)*
                ::core::result::Result::Err(#krate::Error::unknown_event(
                    ::std::string::ToString::to_string(&envelope.category),
                    <Self as #krate::EventGroup>::NAMES,
                ))
            }
        }
    })
}

/// The group's own attributes: a crate path, and no version (its events have theirs).
fn group_args(input: &DeriveInput) -> syn::Result<TypeArgs> {
    let args = TypeArgs::parse(&input.attrs, false)?;
    if let Some(previous) = &args.previous {
        return Err(syn::Error::new(
            previous.span(),
            "an EventGroup has no versions of its own: version its events",
        ));
    }
    if let Some((_, span)) = args.version {
        return Err(syn::Error::new(
            span,
            "an EventGroup has no version of its own: version its events",
        ));
    }
    Ok(args)
}

/// The group's one lifetime (the payload's it borrows from), if any; no type or const
/// parameters.
fn group_lifetime(input: &DeriveInput) -> syn::Result<Option<syn::Lifetime>> {
    let lifetimes: Vec<_> = input.generics.lifetimes().collect();
    if lifetimes.len() > 1 {
        return Err(syn::Error::new(
            lifetimes[1].span(),
            "an EventGroup may have one lifetime, the payload's it borrows from",
        ));
    }
    if let Some(param) = input
        .generics
        .params
        .iter()
        .find(|p| !matches!(p, GenericParam::Lifetime(_)))
    {
        return Err(syn::Error::new(
            param.span(),
            "an EventGroup cannot be generic over types or constants: name its event types",
        ));
    }
    Ok(lifetimes.first().map(|l| l.lifetime.clone()))
}
