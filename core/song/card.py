"""The song model's card as Markdown for the song page: what the model is, its cross-validated
figures (mean ± sd over the folds) and the ablation rows, every number read from the card."""

from __future__ import annotations

from core.metrics import METRICS

def card_summary(card: dict) -> str:
    """One paragraph: the model, its input, its training data and how it was scored."""
    split = card["split"]
    members = card.get("members", {}).get("count", 1)
    network = (f"A CRNN ({card['parameters']:,} parameters: Conv1D → {card['config']['pooling']} pooling → "
               f"dropout → LSTM → Dense)" if members == 1 else
               f"The mean of {members} CRNNs that differ only in their seed (each "
               f"{card['parameters'] // members:,} parameters: Conv1D → {card['config']['pooling']} pooling → "
               f"dropout → LSTM → Dense)")
    return (f"{network} over the sequence of a song's 3-s patches, each described by the "
            f"pretrained musicnn network (Million Song Dataset tags; its 200-d penultimate layer and 50 tag "
            f"probabilities). Trained on the {card['data']['n_songs']} songs of the 4Q audio emotion dataset "
            f"(Panda et al. 2018) with MERGE valence/arousal, and scored by {split['method']} (seed "
            f"{split['seed']}): every figure below is the mean ± sd over the {split['folds']} folds, each fold's "
            f"songs unseen by its model. Shipped: {card['ships']}.")


def card_table(card: dict) -> str:
    """A Markdown table: this model's cross-validated figures, a seed ensemble's single members, then each
    ablation row (same folds)."""
    cv = card["cross_validation"]
    rows = [("this model", cv["mean"], cv["sd"])]
    if "cross_validation_single_members" in card:
        single = card["cross_validation_single_members"]
        rows.append(("one of its CRNNs alone (every seed and fold)", single["mean"], single["sd"]))
    rows += [
        (f"{row['name']} (ablation)", row["mean"], row["sd"]) for row in card.get("ablation", [])
        if "this model's recipe" not in row["name"]]
    columns = METRICS["song"]
    return ("| model | " + " | ".join(m.label for m in columns) + " |\n|---|" + "--:|" * len(columns) + "\n"
            + "\n".join(f"| {name} | " + " | ".join(f"{m.of(mean):.3f} ± {m.of(sd):.3f}" for m in columns)
                        + " |" for name, mean, sd in rows))
