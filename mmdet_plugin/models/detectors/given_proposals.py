"""The proposals that come with the data, for detectors without an RPN."""
from __future__ import annotations

from mmdet.structures import SampleList


def given_proposals(batch_data_samples: SampleList, detector: str) -> list:
    """Each sample's ``proposals``; a ValueError naming ``detector`` and the fix if the batch has
    none (mmdet's TwoStageDetector only asserts)."""
    if batch_data_samples[0].get("proposals", None) is None:
        raise ValueError(f"{detector} needs proposals in the data samples: a proposal_file in the dataset and "
                         "LoadProposals + ProposalBroadcaster in the pipeline "
                         "(configs/_base_/recipes/ss-proposals_36e_trees.py shows both)")
    return [s.proposals for s in batch_data_samples]
