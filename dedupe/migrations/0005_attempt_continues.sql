-- 0005: an attempt that continues a cut stream (on_stream_cut: continue,
-- issue 15) names the attempt it continues, so the ledger shows the
-- stream as one answer paid in several attempts. 0 for every other row;
-- a constant default adds the column without rewriting the table.
ALTER TABLE attempts ADD COLUMN continues integer NOT NULL DEFAULT 0;
