"""The generate -> judge -> filter shape in distilabel 1.5, for the efficiency comparison.

Run with an interpreter that has ``distilabel[openai]`` 1.5 (not koalign's environment):

    /tmp/dlvenv/bin/python bench/distilabel_shape.py --base-url URL --seeds seeds.jsonl

``seeds.jsonl`` holds ``{"instruction": ...}`` rows. Step 1 answers each prompt; step 2 asks a
judge for a JSON verdict (the schema goes in the prompt inside ``<json_schema>`` tags, which
the benchmark double answers with a valid instance); step 3 keeps rows whose verdict is
``pass``. Each LLM step sends ``--batch`` requests at once (distilabel's ``input_batch_size``).
Prints one JSON line.
"""

import argparse
import json
import time

from distilabel.models.llms import OpenAILLM
from distilabel.pipeline import Pipeline
from distilabel.steps import LoadDataFromDicts, StepInput, step
from distilabel.steps.tasks import TextGeneration

SCHEMA = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["pass", "fail"]},
        "reason": {"type": "string"},
    },
    "required": ["verdict", "reason"],
}
JUDGE = (
    "다음 질문과 답변을 평가하세요.\n[질문]\n{{ instruction }}\n[답변]\n{{ generation }}\n"
    "<json_schema>" + json.dumps(SCHEMA, ensure_ascii=False) + "</json_schema>"
)


@step(inputs=["judgement"], outputs=["verdict"])
def KeepPassing(inputs: StepInput):
    kept = []
    for row in inputs:
        try:
            verdict = json.loads(row["judgement"] or "")["verdict"]
        except (ValueError, KeyError, TypeError):
            verdict = None
        if verdict == "pass":
            kept.append({**row, "verdict": verdict})
    yield kept


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--seeds", required=True)
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args()
    with open(args.seeds, encoding="utf-8") as fh:
        rows = [json.loads(x) for x in fh if x.strip()]

    def llm(model: str, temperature: float) -> OpenAILLM:
        return OpenAILLM(
            model=model,
            base_url=args.base_url,
            api_key="bench",
            max_retries=3,
            timeout=60,
            generation_kwargs={"temperature": temperature, "max_new_tokens": 256},
        )

    with Pipeline(name="koalign-shape", enable_metadata=False) as pipeline:
        load = LoadDataFromDicts(data=rows, batch_size=args.batch)
        generate = TextGeneration(
            llm=llm("resp-a", 0.7), input_batch_size=args.batch, add_raw_output=False
        )
        judge = TextGeneration(
            name="judge",
            llm=llm("judge", 0.0),
            template=JUDGE,
            columns=["instruction", "generation"],
            output_mappings={"generation": "judgement"},
            input_mappings={},
            input_batch_size=args.batch,
            add_raw_output=False,
        )
        keep = KeepPassing()
        load >> generate >> judge >> keep
    start = time.perf_counter()
    distiset = pipeline.run(use_cache=False)
    wall = time.perf_counter() - start
    kept = sum(len(split) for cfg in distiset.values() for split in cfg.values())
    print(json.dumps({"rows": len(rows), "kept": kept, "pipeline_wall_s": round(wall, 2)}))


if __name__ == "__main__":
    main()
