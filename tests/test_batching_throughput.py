"""A local engine counts what it generated: tokens per second of generation."""

from __future__ import annotations

import asyncio

from posttrain.models.batching import BatchingModel
from posttrain.types import ChatRequest, Completion


class Counting(BatchingModel):
    batch_size = 2

    def generate_batch(self, requests: list[ChatRequest]) -> list[Completion]:
        return [Completion(text="x", output_tokens=len(r.messages[0]["content"]))
                for r in requests]


def test_throughput_counts_batches_answers_and_tokens() -> None:
    async def scenario() -> Counting:
        model = Counting()
        assert model.throughput() is None  # nothing generated yet
        texts = ["a", "bb", "ccc", "dddd", "eeeee"]
        await asyncio.gather(*(model.generate(ChatRequest(messages=[
            {"role": "user", "content": text}])) for text in texts))
        await model.aclose()
        return model

    rate = asyncio.run(scenario()).throughput()
    assert rate is not None
    assert rate["answers"] == 5 and rate["tokens"] == 15 and rate["batch_size"] == 2
    assert rate["batches"] == 3  # five requests in batches of at most two
    assert rate["seconds"] >= 0 and rate["tokens_per_s"] > 0
