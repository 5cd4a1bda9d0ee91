//! Writing a collection: documents with their chunks (two commits, document rows last),
//! deletion, orphan removal, and index maintenance (full text, compaction, vector index). Every
//! write holds the collection's write lock and starts from the tables' latest version.

use super::*;

impl Collection {
    /// Writes documents and their chunks: the chunks (replacing any older chunks of those
    /// documents) in one commit, then the document rows in a second.
    pub async fn write(&self, docs: Vec<(DocumentRecord, Vec<ChunkRow>)>) -> Result<()> {
        if docs.is_empty() {
            return Ok(());
        }
        let _lock = self.write_lock().await?;
        self.add_ocr_column().await?;
        self.add_mail_column().await?;
        let ids: Vec<String> = docs.iter().map(|(d, _)| d.id.clone()).collect();
        let list = id_list(&ids)?;
        let rows: Vec<&ChunkRow> = docs.iter().flat_map(|(_, c)| c).collect();
        let batch = self.chunk_batch(&rows)?;
        let mut merge = self.chunks.merge_insert(&["id"]);
        merge
            .when_matched_update_all(None)
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(Some(format!("document_id IN ({list})")));
        merge
            .execute(reader(batch))
            .await
            .map_err(|e| Error::storage("write chunks", e))?;
        let records: Vec<&DocumentRecord> = docs.iter().map(|(d, _)| d).collect();
        let batch = document_batch(&records)?;
        let mut merge = self.documents.merge_insert(&["id"]);
        merge
            .when_matched_update_all(None)
            .when_not_matched_insert_all();
        merge
            .execute(reader(batch))
            .await
            .map_err(|e| Error::storage("write documents", e))?;
        Ok(())
    }

    /// Gives a chunks table from before OCR its [`OCR_COLUMN`], all nulls (a metadata-only
    /// commit). Runs under the write lock, on the latest version.
    pub(super) async fn add_ocr_column(&self) -> Result<()> {
        add_null_column(&self.chunks, ocr_field(), "add the OCR column").await?;
        self.has_ocr_column
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Gives a documents table from before e-mail fields its [`MAIL_COLUMN`], all nulls.
    /// Runs under the write lock.
    pub(super) async fn add_mail_column(&self) -> Result<()> {
        add_null_column(&self.documents, mail_field(), "add the mail column").await
    }

    fn chunk_batch(&self, rows: &[&ChunkRow]) -> Result<RecordBatch> {
        let dim = self.meta.dimension;
        if let Some(bad) = rows.iter().find(|r| r.vector.len() != dim) {
            return Err(Error::InvalidRequest(format!(
                "a vector of length {} for a collection of dimension {dim}",
                bad.vector.len()
            )));
        }
        let vectors = FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
            rows.iter()
                .map(|r| Some(r.vector.iter().copied().map(Some).collect::<Vec<_>>())),
            dim as i32,
        );
        // from_iter_primitive marks the list field nullable; match the table's schema.
        let vectors = FixedSizeListArray::new(
            Arc::new(Field::new("item", DataType::Float32, true)),
            dim as i32,
            vectors.values().clone(),
            None,
        );
        let name = self.meta.name.as_str();
        RecordBatch::try_new(
            chunk_schema(dim),
            vec![
                strings(rows.iter().map(|r| r.id.as_str())),
                strings(rows.iter().map(|r| r.document_id.as_str())),
                strings(rows.iter().map(|_| name)),
                Arc::new(UInt32Array::from_iter_values(
                    rows.iter().map(|r| r.ordinal),
                )),
                strings(rows.iter().map(|r| r.text.as_str())),
                Arc::new(vectors),
                Arc::new(UInt64Array::from_iter_values(
                    rows.iter().map(|r| r.byte_range.0),
                )),
                Arc::new(UInt64Array::from_iter_values(
                    rows.iter().map(|r| r.byte_range.1),
                )),
                Arc::new(UInt64Array::from_iter_values(
                    rows.iter().map(|r| r.char_range.0),
                )),
                Arc::new(UInt64Array::from_iter_values(
                    rows.iter().map(|r| r.char_range.1),
                )),
                Arc::new(rows.iter().map(|r| r.page).collect::<UInt32Array>()),
                strings(rows.iter().map(|r| r.path.as_str())),
                strings(rows.iter().map(|r| r.title.as_str())),
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|r| r.file_modified),
                )),
                Arc::new(
                    rows.iter()
                        .map(|r| r.ocr_confidence)
                        .collect::<Float32Array>(),
                ),
            ],
        )
        .map_err(|e| Error::storage("build chunk batch", e))
    }

    /// Deletes documents and their chunks.
    pub async fn delete_documents(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let _lock = self.write_lock().await?;
        let list = id_list(ids)?;
        self.documents
            .delete(format!("id IN ({list})").as_str())
            .await
            .map_err(|e| Error::storage("delete documents", e))?;
        self.chunks
            .delete(format!("document_id IN ({list})").as_str())
            .await
            .map_err(|e| Error::storage("delete chunks", e))?;
        Ok(())
    }

    /// Removes chunks whose document row is missing (a crash between the two commits of
    /// [`Self::write`] or of [`Self::delete_documents`]). Returns how many documents' chunks
    /// were removed.
    pub async fn remove_orphans(&self) -> Result<usize> {
        let _lock = self.write_lock().await?;
        let known: HashSet<String> = self.documents().await?.into_iter().map(|d| d.id).collect();
        let batches = read_all(
            &self
                .chunks
                .query()
                .select(Select::columns(&["document_id"])),
            "scan chunks",
        )
        .await?;
        let mut orphans = HashSet::new();
        for b in &batches {
            let cols = Cols(b);
            let ids = cols.get::<StringArray>("document_id")?;
            for i in 0..ids.len() {
                let id = ids.value(i);
                if !known.contains(id) {
                    orphans.insert(id.to_string());
                }
            }
        }
        if !orphans.is_empty() {
            let ids: Vec<String> = orphans.iter().cloned().collect();
            self.chunks
                .delete(format!("document_id IN ({})", id_list(&ids)?).as_str())
                .await
                .map_err(|e| Error::storage("delete orphan chunks", e))?;
        }
        Ok(orphans.len())
    }

    /// Brings the indexes up to date after writes: the full-text index on `text` (built or
    /// extended), compaction, and an IVF-HNSW-SQ vector index once there are `ann_threshold` rows.
    pub async fn optimize(&self, ann_threshold: usize) -> Result<()> {
        let _lock = self.write_lock().await?;
        let rows = self
            .chunks
            .count_rows(None)
            .await
            .map_err(|e| Error::storage("count", e))?;
        let indices = self
            .chunks
            .list_indices()
            .await
            .map_err(|e| Error::storage("list indices", e))?;
        let has = |col: &str| indices.iter().any(|i| i.columns.iter().any(|c| c == col));
        if rows > 0 && !has("text") {
            self.chunks
                .create_index(&["text"], Index::FTS(FtsIndexBuilder::default()))
                .execute()
                .await
                .map_err(|e| Error::storage("build full-text index", e))?;
        }
        // A collection indexed by an older BEAR (IVF-PQ) gets the current kind of index.
        let current = vector_index_type(&indices).as_deref() == Some(VECTOR_INDEX);
        if rows >= ann_threshold.max(256) && !current {
            self.build_vector_index_locked(rows).await?;
        }
        for t in [&self.chunks, &self.documents] {
            t.optimize(lancedb::table::OptimizeAction::All)
                .await
                .map_err(|e| Error::storage("optimize", e))?;
        }
        Ok(())
    }

    /// Builds the vector index: IVF-HNSW-SQ (an HNSW graph over 8-bit scalar-quantised
    /// vectors in each IVF partition), one partition per 250,000 rows. At
    /// 100,000 rows of 384 dimensions a query costs a few hundred distance evaluations
    /// instead of IVF-PQ's scan of whole partitions, at recall@10 above 0.95 without a
    /// refine step (see `cargo xtask bench rag`).
    pub async fn build_vector_index(&self, rows: usize) -> Result<()> {
        let _lock = self.write_lock().await?;
        self.build_vector_index_locked(rows).await
    }

    /// [`Self::build_vector_index`] under a write lock the caller holds.
    async fn build_vector_index_locked(&self, rows: usize) -> Result<()> {
        let partitions = rows.div_ceil(ROWS_PER_PARTITION).clamp(1, 4096) as u32;
        let builder = lancedb::index::vector::IvfHnswSqIndexBuilder::default()
            .distance_type(DistanceType::Cosine)
            .num_partitions(partitions)
            .ef_construction(150);
        self.chunks
            .create_index(&["vector"], Index::IvfHnswSq(builder))
            .replace(true)
            .execute()
            .await
            .map_err(|e| Error::storage("build vector index", e))
    }

    /// The vector index's kind (`IVF_HNSW_SQ`, `IVF_PQ`, ...), `None` without one.
    pub async fn vector_index_kind(&self) -> Result<Option<String>> {
        let indices = self
            .chunks
            .list_indices()
            .await
            .map_err(|e| Error::storage("list indices", e))?;
        Ok(vector_index_type(&indices))
    }
}
