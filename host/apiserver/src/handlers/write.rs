//! Create (POST) and update (PUT, `status`, `finalize`): decode the object and hand it to the
//! REST layer's pipelines.

use axum::response::Response;
use bytes::Bytes;

use super::Ctx;
use crate::codec;
use crate::error::ApiResult;
use crate::rest::{self, WriteOptions};

pub(crate) async fn create(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let obj = codec::decode_object(&ctx.headers, &body)?;
    let opts = WriteOptions::from_ctx(&ctx)?;
    let written = rest::create_object(&ctx.api, &ctx.def, ctx.namespace(), obj, &opts).await?;
    Ok(written.respond(201))
}

pub(crate) async fn update(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let new = codec::decode_object(&ctx.headers, &body)?;
    let opts = WriteOptions::from_ctx(&ctx)?;
    Ok(rest::update(&ctx, new, &opts).await?.respond(200))
}
