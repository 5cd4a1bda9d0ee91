//! Proof that LanceDB works as an embedded database in a temporary directory, with arrow-array
//! on lancedb's arrow major.

use std::sync::Arc;

use arrow_array::{FixedSizeListArray, Int32Array, RecordBatch, types::Float32Type};
use arrow_schema::{DataType, Field, Schema};
use futures::TryStreamExt;
use lancedb::query::{ExecutableQuery, QueryBase};

#[tokio::test]
async fn lancedb_creates_and_searches_a_table_in_a_temp_dir() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = lancedb::connect(dir.path().to_str().expect("utf-8 temp path"))
        .execute()
        .await?;

    let dim = 4;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new(
            "vector",
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), dim),
            true,
        ),
    ]));
    let vectors = FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
        (0..10).map(|i| {
            Some(
                (0..dim)
                    .map(|j| Some((i * dim + j) as f32))
                    .collect::<Vec<_>>(),
            )
        }),
        dim,
    );
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int32Array::from_iter_values(0..10)),
            Arc::new(vectors),
        ],
    )?;
    let table = db.create_table("proof", batch).execute().await?;
    assert_eq!(table.count_rows(None).await?, 10);

    // The nearest neighbour of row 7's own vector is row 7.
    let query: Vec<f32> = (0..dim).map(|j| (7 * dim + j) as f32).collect();
    let results: Vec<RecordBatch> = table
        .query()
        .nearest_to(query)?
        .limit(1)
        .execute()
        .await?
        .try_collect()
        .await?;
    let ids = results[0]
        .column_by_name("id")
        .expect("id column")
        .as_any()
        .downcast_ref::<Int32Array>()
        .expect("int32 ids");
    assert_eq!(ids.value(0), 7);
    Ok(())
}
