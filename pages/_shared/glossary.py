"""Plain-language explanations shown as tooltips wherever a term appears on a page."""
from __future__ import annotations


#: plain-language explanations shown as tooltips wherever the term appears
GLOSSARY = {
    "target item": "An item the attacker wants the recommender to push: the fake users all rate it with the top score.",
    "HR@K": "Hit ratio at K: the share of real users who find the item among their K best recommendations "
            "(target HR: averaged over the target items; test HR: the user's own held-out item, i.e. accuracy).",
    "RI": "Robustness improvement: 1 = the defense fully undid the attack, 0 = no better than no defense, "
          "below 0 = worse than no defense.",
    "ERM user": "A user that APT adds itself during training. It rates items of negative influence on the model's empirical "
                "risk (I_j < 0, drawn with probability ∝ exp(−t·I_j)), around each item's mean plus a lift. Nothing in that "
                "choice points at the attacker's targets.",
    "oracle statistics": "The item averages from the clean data, before any poisoning: what the authors' released code uses "
                         "(the paper's text says the training data's, which may be contaminated). A real defender never has "
                         "them: 'observed' statistics (from the poisoned data) are the honest setting.",
    "attack size": "Number of fake users as a share of the real users (3% of 600 users = 18 fake users).",
}
