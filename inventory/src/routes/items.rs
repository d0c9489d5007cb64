//! `GET /items`, `GET /items/{sku}`, `GET /categories`.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::domain::Sku;
use crate::error::Error;
use crate::store::{ItemFilter, Store};

#[derive(Deserialize)]
pub struct ItemsQuery {
    category: Option<String>,
    /// Comma-separated skus.
    skus: Option<String>,
}

impl ItemsQuery {
    fn parse(self) -> Result<ItemFilter, Error> {
        let skus = match self.skus {
            None => None,
            Some(list) => {
                let skus: Vec<String> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Sku::parse(s).map(|s| s.as_str().to_owned()))
                    .collect::<Result<_, _>>()?;
                if skus.len() > 200 {
                    return Err(Error::InvalidRequest("ask for at most 200 skus".into()));
                }
                Some(skus)
            }
        };
        Ok(ItemFilter {
            category: self.category.filter(|c| !c.is_empty()),
            skus,
        })
    }
}

#[tracing::instrument(skip_all)]
pub async fn list_items(
    store: web::Data<Store>,
    query: web::Query<ItemsQuery>,
) -> Result<HttpResponse, Error> {
    let filter = query.into_inner().parse()?;
    let items = if filter.skus.as_ref().is_some_and(Vec::is_empty) {
        Vec::new()
    } else {
        store.list_items(&filter).await?
    };
    Ok(HttpResponse::Ok().json(json!({ "count": items.len(), "items": items })))
}

#[tracing::instrument(skip_all, fields(sku = %path))]
pub async fn get_item(
    store: web::Data<Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let sku = path.into_inner();
    let not_found = || Error::ItemNotFound { sku: sku.clone() };
    let valid = Sku::parse(&sku).map_err(|_| not_found())?;
    let item = store
        .get_item(valid.as_str())
        .await?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(item))
}

pub async fn list_categories(store: web::Data<Store>) -> Result<HttpResponse, Error> {
    let categories = store.categories().await?;
    Ok(HttpResponse::Ok().json(json!({ "count": categories.len(), "categories": categories })))
}
