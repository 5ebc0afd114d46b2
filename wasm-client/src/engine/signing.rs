//! When to ask the signing server for part URLs, and how many at a time.
//!
//! One request per part costs hundreds of round trips per gigabyte; signing every part up front
//! lets URLs expire in the queue on slow links. The queue keeps a small stock of signed URLs and
//! asks for the next batch — about two rounds of parallel PUTs — when the stock falls below one
//! round, with at most one signing request in flight, so PUTs never wait for a signature on a
//! healthy connection.

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use s3_direct_protocol::limits::MAX_BATCH_PARTS;
use s3_direct_protocol::wire::SignBatchResponse;

/// A part with a URL, ready to PUT.
#[derive(Debug, Clone)]
pub(crate) struct SignedPart {
    pub(crate) part: u32,
    pub(crate) url: String,
    /// Headers of the batch the URL came from (shared: every part of a batch has the same).
    pub(crate) headers: Rc<BTreeMap<String, String>>,
}

/// How many part numbers to ask for when `remaining` parts still lack a URL.
pub(crate) fn batch_size(concurrency: usize, remaining: usize) -> usize {
    concurrency
        .saturating_mul(2)
        .clamp(1, MAX_BATCH_PARTS)
        .min(remaining)
}

/// Parts waiting for a URL, URLs waiting for a free PUT slot, and the batch being signed.
#[derive(Debug)]
pub(crate) struct SignQueue {
    concurrency: usize,
    /// Parts without a URL, in the order they should be uploaded.
    unsigned: VecDeque<u32>,
    /// Signed URLs not yet used.
    ready: VecDeque<SignedPart>,
    /// The batch a signing request is out for.
    in_flight: Option<Vec<u32>>,
}

impl SignQueue {
    pub(crate) fn new(parts: impl IntoIterator<Item = u32>, concurrency: usize) -> Self {
        Self {
            concurrency,
            unsigned: parts.into_iter().collect(),
            ready: VecDeque::new(),
            in_flight: None,
        }
    }

    /// The next batch to sign, if one should be requested now. The caller must report the
    /// outcome with [`accept`](Self::accept) or [`fail`](Self::fail).
    pub(crate) fn next_batch(&mut self) -> Option<Vec<u32>> {
        if self.in_flight.is_some()
            || self.unsigned.is_empty()
            || self.ready.len() >= self.concurrency
        {
            return None;
        }
        let n = batch_size(self.concurrency, self.unsigned.len());
        let batch: Vec<u32> = self.unsigned.drain(..n).collect();
        self.in_flight = Some(batch.clone());
        Some(batch)
    }

    /// Stores the URLs of the batch in flight. Fails with the first part number the answer left
    /// out, so a half-answered batch is caught here rather than as a stuck upload.
    pub(crate) fn accept(&mut self, answer: SignBatchResponse) -> Result<(), u32> {
        let batch = self.in_flight.take().unwrap_or_default();
        let SignBatchResponse {
            mut presigned_urls,
            headers,
            ..
        } = answer;
        let headers = Rc::new(headers);
        let mut signed = Vec::with_capacity(batch.len());
        for part in batch {
            match presigned_urls.remove(&part) {
                Some(url) if !url.is_empty() => signed.push(SignedPart {
                    part,
                    url,
                    headers: headers.clone(),
                }),
                _ => return Err(part),
            }
        }
        self.ready.extend(signed);
        Ok(())
    }

    /// The next part to PUT, if one is signed.
    pub(crate) fn take(&mut self) -> Option<SignedPart> {
        self.ready.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(parts: &[u32]) -> SignBatchResponse {
        SignBatchResponse {
            presigned_urls: parts.iter().map(|&n| (n, format!("u{n}"))).collect(),
            expires: Some(900),
            headers: BTreeMap::from([("x-amz-test".to_string(), "1".to_string())]),
        }
    }

    #[test]
    fn batches_are_two_rounds_capped_by_the_api_limit_and_what_is_left() {
        assert_eq!(batch_size(4, 40), 8);
        assert_eq!(batch_size(4, 3), 3);
        assert_eq!(batch_size(1, 10), 2);
        assert_eq!(batch_size(600, 10_000), MAX_BATCH_PARTS);
    }

    #[test]
    fn asks_again_only_when_the_stock_drops_below_one_round() {
        let mut q = SignQueue::new(1..=20, 3);
        let first = q.next_batch().unwrap();
        assert_eq!(first, [1, 2, 3, 4, 5, 6]);
        assert_eq!(q.next_batch(), None, "one request at a time");
        q.accept(answer(&first)).unwrap();
        let taken: Vec<u32> = (0..3).map(|_| q.take().unwrap().part).collect();
        assert_eq!(taken, [1, 2, 3]);
        assert_eq!(q.next_batch(), None, "three URLs still in stock");
        let p4 = q.take().unwrap();
        assert_eq!((p4.part, p4.url.as_str()), (4, "u4"));
        assert_eq!(p4.headers["x-amz-test"], "1");
        assert_eq!(q.next_batch().unwrap(), [7, 8, 9, 10, 11, 12]);
    }

    #[test]
    fn a_batch_missing_a_url_names_the_part() {
        let mut q = SignQueue::new(1..=4, 2);
        q.next_batch().unwrap();
        assert_eq!(q.accept(answer(&[1, 2, 4])), Err(3));
    }
}
