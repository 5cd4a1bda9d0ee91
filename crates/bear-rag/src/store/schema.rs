//! The Arrow side of the store: the `chunks` and `documents` schemas, record batches built
//! from rows, and typed column reads back from query results.

use super::*;

pub(super) fn chunk_schema(dim: usize) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("document_id", DataType::Utf8, false),
        Field::new("collection", DataType::Utf8, false),
        Field::new("ordinal", DataType::UInt32, false),
        Field::new("text", DataType::Utf8, false),
        Field::new(
            "vector",
            DataType::FixedSizeList(
                Arc::new(Field::new("item", DataType::Float32, true)),
                dim as i32,
            ),
            false,
        ),
        Field::new("byte_start", DataType::UInt64, false),
        Field::new("byte_end", DataType::UInt64, false),
        Field::new("char_start", DataType::UInt64, false),
        Field::new("char_end", DataType::UInt64, false),
        Field::new("page", DataType::UInt32, true),
        Field::new("path", DataType::Utf8, false),
        Field::new("title", DataType::Utf8, false),
        Field::new("file_modified", DataType::Int64, false),
        ocr_field(),
    ]))
}

/// The column holding a chunk's OCR confidence (0-100; null for text that was not OCR'd).
/// Collections made before it get it, all nulls, at their next write.
pub(super) const OCR_COLUMN: &str = "ocr_confidence";

pub(super) fn ocr_field() -> Field {
    Field::new(OCR_COLUMN, DataType::Float32, true)
}

pub(super) fn document_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("path", DataType::Utf8, false),
        Field::new("title", DataType::Utf8, false),
        Field::new("author", DataType::Utf8, true),
        Field::new("created", DataType::Utf8, true),
        Field::new("modified", DataType::Utf8, true),
        Field::new("file_modified", DataType::Int64, false),
        Field::new("page_count", DataType::UInt32, true),
        Field::new("mime", DataType::Utf8, false),
        Field::new("sha256", DataType::Utf8, false),
        Field::new("size", DataType::UInt64, false),
        Field::new("chunks", DataType::UInt32, false),
        Field::new("ingested_at", DataType::Int64, false),
        mail_field(),
    ]))
}

/// The documents column holding an e-mail's [`MailMeta`] as JSON (null for other documents).
/// Collections made before it get it, all nulls, at their next write.
pub(super) const MAIL_COLUMN: &str = "mail";

pub(super) fn mail_field() -> Field {
    Field::new(MAIL_COLUMN, DataType::Utf8, true)
}

pub(super) fn strings<'a>(v: impl IntoIterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(v))
}

pub(super) fn opt_strings<'a>(v: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(v.into_iter().collect::<StringArray>())
}

pub(super) fn reader(batch: RecordBatch) -> Box<dyn arrow_array::RecordBatchReader + Send> {
    let schema = batch.schema();
    Box::new(RecordBatchIterator::new(vec![Ok(batch)], schema))
}

/// Runs a query and collects every result batch; `op` names it in errors.
pub(super) async fn read_all(
    q: &impl ExecutableQuery,
    op: &'static str,
) -> Result<Vec<RecordBatch>> {
    q.execute()
        .await
        .map_err(|e| Error::storage(op, e))?
        .try_collect()
        .await
        .map_err(|e| Error::storage(op, e))
}

/// Typed column access on a result batch.
pub(super) struct Cols<'a>(pub(super) &'a RecordBatch);

impl Cols<'_> {
    pub(super) fn get<T: 'static>(&self, name: &str) -> Result<&T> {
        self.0
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<T>())
            .ok_or_else(|| Error::Storage {
                op: "read",
                reason: format!("column `{name}` is missing or has an unexpected type"),
            })
    }
    pub(super) fn str(&self, name: &str, i: usize) -> Result<String> {
        Ok(self.get::<StringArray>(name)?.value(i).to_string())
    }
    pub(super) fn opt_str(&self, name: &str, i: usize) -> Result<Option<String>> {
        let a = self.get::<StringArray>(name)?;
        Ok((!a.is_null(i)).then(|| a.value(i).to_string()))
    }
    /// A nullable JSON column, `None` also when the table predates the column.
    pub(super) fn json<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        i: usize,
    ) -> Result<Option<T>> {
        if self.0.column_by_name(name).is_none() {
            return Ok(None);
        }
        self.opt_str(name, i)?
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|_| Error::Storage {
                op: "read",
                reason: format!("column `{name}` holds a value that is not the expected JSON"),
            })
    }
    pub(super) fn u32(&self, name: &str, i: usize) -> Result<u32> {
        Ok(self.get::<UInt32Array>(name)?.value(i))
    }
    pub(super) fn opt_u32(&self, name: &str, i: usize) -> Result<Option<u32>> {
        let a = self.get::<UInt32Array>(name)?;
        Ok((!a.is_null(i)).then(|| a.value(i)))
    }
    pub(super) fn u64(&self, name: &str, i: usize) -> Result<u64> {
        Ok(self.get::<UInt64Array>(name)?.value(i))
    }
    pub(super) fn i64(&self, name: &str, i: usize) -> Result<i64> {
        Ok(self.get::<Int64Array>(name)?.value(i))
    }
    pub(super) fn f32(&self, name: &str, i: usize) -> Result<f32> {
        Ok(self.get::<Float32Array>(name)?.value(i))
    }
    /// A nullable float; `None` too when the batch lacks the column (an older collection).
    pub(super) fn opt_f32(&self, name: &str, i: usize) -> Result<Option<f32>> {
        if self.0.column_by_name(name).is_none() {
            return Ok(None);
        }
        let a = self.get::<Float32Array>(name)?;
        Ok((!a.is_null(i)).then(|| a.value(i)))
    }
    /// The search hit in row `i` (the [`HIT_COLUMNS`], and [`OCR_COLUMN`] when the table has
    /// it) with `score`.
    pub(super) fn hit(&self, i: usize, score: f32) -> Result<Hit> {
        Ok(Hit {
            chunk_id: self.str("id", i)?,
            document_id: self.str("document_id", i)?,
            path: self.str("path", i)?,
            title: self.str("title", i)?,
            page: self.opt_u32("page", i)?,
            ordinal: self.u32("ordinal", i)?,
            byte_range: (self.u64("byte_start", i)?, self.u64("byte_end", i)?),
            char_range: (self.u64("char_start", i)?, self.u64("char_end", i)?),
            text: self.str("text", i)?,
            ocr_confidence: self.opt_f32(OCR_COLUMN, i)?,
            score,
        })
    }
}

/// Whether `chunks` has the [`OCR_COLUMN`].
pub(super) async fn has_ocr_column(chunks: &Table) -> Result<bool> {
    has_column(chunks, OCR_COLUMN).await
}

/// Whether `table` has column `name`.
pub(super) async fn has_column(table: &Table, name: &str) -> Result<bool> {
    let schema = table
        .schema()
        .await
        .map_err(|e| Error::storage("read the schema", e))?;
    Ok(schema.field_with_name(name).is_ok())
}

/// Gives `table` the nullable column `field`, all nulls (a metadata-only commit), for
/// tables made before it; `what` names it in errors. Runs under the write lock.
pub(super) async fn add_null_column(table: &Table, field: Field, what: &'static str) -> Result<()> {
    if has_column(table, field.name()).await? {
        return Ok(());
    }
    table
        .add_columns()
        .transform(lancedb::table::NewColumnTransform::AllNulls(Arc::new(
            Schema::new(vec![field]),
        )))
        .execute()
        .await
        .map_err(|e| Error::storage(what, e))
        .map(|_| ())
}

pub(super) const HIT_COLUMNS: [&str; 11] = [
    "id",
    "document_id",
    "path",
    "title",
    "page",
    "ordinal",
    "byte_start",
    "byte_end",
    "char_start",
    "char_end",
    "text",
];

pub(super) fn document_batch(rows: &[&DocumentRecord]) -> Result<RecordBatch> {
    let mail = rows
        .iter()
        .map(|r| r.mail.as_ref().map(serde_json::to_string).transpose())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| Error::Storage {
            op: "write documents",
            reason: "mail fields could not be encoded".into(),
        })?;
    RecordBatch::try_new(
        document_schema(),
        vec![
            strings(rows.iter().map(|r| r.id.as_str())),
            strings(rows.iter().map(|r| r.path.as_str())),
            strings(rows.iter().map(|r| r.title.as_str())),
            opt_strings(rows.iter().map(|r| r.author.as_deref())),
            opt_strings(rows.iter().map(|r| r.created.as_deref())),
            opt_strings(rows.iter().map(|r| r.modified.as_deref())),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.file_modified),
            )),
            Arc::new(rows.iter().map(|r| r.page_count).collect::<UInt32Array>()),
            strings(rows.iter().map(|r| r.mime.as_str())),
            strings(rows.iter().map(|r| r.sha256.as_str())),
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.size))),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.chunks))),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.ingested_at),
            )),
            opt_strings(mail.iter().map(Option::as_deref)),
        ],
    )
    .map_err(|e| Error::storage("build document batch", e))
}
