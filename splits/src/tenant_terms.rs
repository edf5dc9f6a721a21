//! Per-tenant term listings. A field's term dictionary (service names, attribute
//! values) is shared by every tenant with documents in a segment; a term belongs to a
//! tenant's listing only if one of its documents is the tenant's. [`TenantTerms`]
//! decides that by intersecting the term's postings with the tenant's (skip lists make
//! it a few seeks), and answers at once in the usual case of a segment that holds one
//! tenant only.

use std::sync::Arc;

use tantivy::postings::TermInfo;
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocSet, InvertedIndexReader, SegmentReader, TERMINATED, Term};

use crate::error::Result;

/// Which terms of a segment have a document of one tenant.
pub(crate) struct TenantTerms {
    tenant: Option<(Arc<InvertedIndexReader>, TermInfo)>,
    every_doc: bool,
}

impl TenantTerms {
    /// The tenant `tenant` of the `tenant_field` in `seg`.
    pub(crate) fn new(
        seg: &SegmentReader,
        tenant_field: Field,
        tenant: &str,
    ) -> Result<TenantTerms> {
        let inv = seg.inverted_index(tenant_field)?;
        let info = inv
            .get_term_info(&Term::from_field_text(tenant_field, tenant))
            .map_err(crate::Error::io("read the tenant's postings"))?;
        let every_doc = info.as_ref().is_some_and(|i| i.doc_freq == seg.max_doc());
        Ok(TenantTerms {
            tenant: info.map(|i| (inv, i)),
            every_doc,
        })
    }

    /// Whether the tenant has no document in the segment (nothing of it to list).
    pub(crate) fn absent(&self) -> bool {
        self.tenant.is_none()
    }

    /// Whether the term with `info` in `inv` has a document of the tenant.
    pub(crate) fn admits(&self, inv: &InvertedIndexReader, info: &TermInfo) -> Result<bool> {
        let Some((tinv, tinfo)) = &self.tenant else {
            return Ok(false);
        };
        if self.every_doc {
            return Ok(true);
        }
        let io = crate::Error::io("read postings");
        let mut a = inv
            .read_postings_from_terminfo(info, IndexRecordOption::Basic)
            .map_err(io)?;
        let mut b = tinv
            .read_postings_from_terminfo(tinfo, IndexRecordOption::Basic)
            .map_err(crate::Error::io("read the tenant's postings"))?;
        loop {
            let (x, y) = (a.doc(), b.doc());
            if x == TERMINATED || y == TERMINATED {
                return Ok(false);
            }
            if x == y {
                return Ok(true);
            }
            if x < y {
                a.seek(y);
            } else {
                b.seek(x);
            }
        }
    }
}
