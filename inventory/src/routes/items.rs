//! `GET /items`, `GET /items/{sku}`, `GET /categories`.

use actix_web::{HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use shared_http::openapi::PROBLEM_JSON;
use shared_http::problem::ProblemDetails;
use utoipa::{IntoParams, ToSchema};

use crate::domain::{Item, ParseError, Sku};
use crate::error::{Error, SkuProblem};
use crate::store::{Category, ItemFilter, Store};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ItemsQuery {
    /// Only the items of this category.
    #[param(example = "electronics")]
    category: Option<String>,
    /// Only these skus, comma-separated (at most 200; blanks around them are ignored).
    #[param(
        example = "A001,B001",
        pattern = r"^\s*([A-Za-z0-9._-]{1,32}\s*)?(,\s*([A-Za-z0-9._-]{1,32}\s*)?)*$"
    )]
    skus: Option<String>,
}

/// Most skus one `GET /items?skus=` may name (the documented bound).
const MAX_LISTED_SKUS: usize = 200;

impl ItemsQuery {
    fn parse(self) -> Result<ItemFilter, Error> {
        let skus = match self.skus {
            None => None,
            Some(list) => {
                let skus: Vec<Sku> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(Sku::parse)
                    .collect::<Result<_, _>>()
                    .map_err(ParseError::from)?;
                if skus.len() > MAX_LISTED_SKUS {
                    return Err(Error::InvalidRequest(format!(
                        "ask for at most {MAX_LISTED_SKUS} skus"
                    )));
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

/// The items asked for.
#[derive(Serialize, ToSchema)]
pub struct ItemList {
    count: usize,
    items: Vec<Item>,
}

/// Lists the items, optionally of one category or only some skus.
#[utoipa::path(
    tag = "items",
    params(ItemsQuery),
    responses(
        (status = 200, description = "The items, by sku.", body = ItemList),
        (status = 400, description = "`invalid_request`: a listed sku is malformed, or over 200 are listed.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
    )
)]
#[get("/items")]
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
    Ok(HttpResponse::Ok().json(ItemList {
        count: items.len(),
        items,
    }))
}

/// One item and its stock.
#[utoipa::path(
    tag = "items",
    params(("sku" = String, Path, description = "The item's sku.", example = "A001")),
    responses(
        (status = 200, description = "The item.", body = Item),
        (status = 404, description = "`item_not_found`: no item has this sku.",
            body = SkuProblem, content_type = PROBLEM_JSON),
    )
)]
#[get("/items/{sku}")]
#[tracing::instrument(skip_all, fields(sku = %path))]
pub async fn get_item(
    store: web::Data<Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let sku = path.into_inner();
    let not_found = || Error::ItemNotFound { sku: sku.clone() };
    let valid = Sku::parse(&sku).map_err(|_| not_found())?;
    let item = store.get_item(&valid).await?.ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(item))
}

/// A category and what it holds.
#[derive(Serialize, ToSchema)]
#[schema(as = Category)]
pub struct CategoryResponse {
    #[schema(example = "electronics")]
    name: String,
    /// How many items are in it.
    #[schema(minimum = 0)]
    items: i64,
    /// Their stock, added up.
    #[schema(minimum = 0)]
    stock: i64,
}

impl From<Category> for CategoryResponse {
    fn from(c: Category) -> Self {
        Self {
            name: c.name,
            items: c.items,
            stock: c.stock,
        }
    }
}

/// Every category.
#[derive(Serialize, ToSchema)]
pub struct CategoryList {
    count: usize,
    categories: Vec<CategoryResponse>,
}

/// The categories, with how many items and how much stock each holds.
#[utoipa::path(
    tag = "items",
    responses((status = 200, description = "Every category.", body = CategoryList))
)]
#[get("/categories")]
pub async fn list_categories(store: web::Data<Store>) -> Result<HttpResponse, Error> {
    let categories: Vec<CategoryResponse> = store
        .categories()
        .await?
        .into_iter()
        .map(CategoryResponse::from)
        .collect();
    Ok(HttpResponse::Ok().json(CategoryList {
        count: categories.len(),
        categories,
    }))
}
