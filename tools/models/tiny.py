"""tiny-random's vocabulary: characters with byte fallback, as a Hugging Face and a SentencePiece tokenizer.

One piece per printable ASCII character (space written as `▁`, SentencePiece-style), the 256 byte pieces for
everything else, and ChatML's turn markers as control tokens. With no multi-character pieces there is nothing to
merge, so transformers, SentencePiece and llama.cpp split any text into exactly the same tokens — which is what
lets a tiny-random export be checked word for word in a real engine. Built from constants: offline, in
milliseconds, the same on every machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

SPACE = "\u2581"
SPECIALS: tuple[str, ...] = ("<unk>", "<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>")
UNK, BOS, EOS, PAD, IM_START, IM_END = SPECIALS
BYTES: tuple[str, ...] = tuple(f"<0x{b:02X}>" for b in range(256))
CHARS: tuple[str, ...] = (SPACE, *(chr(c) for c in range(0x21, 0x7F)))
PIECES: tuple[str, ...] = SPECIALS + BYTES + CHARS
"""Every token, in id order."""

VOCAB_SIZE = len(PIECES)
TOKEN_IDS = {piece: i for i, piece in enumerate(PIECES)}
SENTENCEPIECE_FILE = "tokenizer.model"

def tiny_tokenizer(context: int) -> PreTrainedTokenizerBase:
    """The Hugging Face tokenizer: no prefix space, no BOS/EOS added to plain text, end of turn as eos."""
    from transformers import LlamaTokenizer

    tok = LlamaTokenizer(vocab=dict(TOKEN_IDS), merges=[], unk_token=UNK, bos_token=BOS, eos_token=IM_END,
                         pad_token=PAD, add_prefix_space=False, add_bos_token=False, add_eos_token=False,
                         legacy=False, extra_special_tokens=[IM_START, IM_END], model_max_length=context)
    return tok


def sentencepiece_model() -> bytes:
    """The same vocabulary as a SentencePiece model (`tokenizer.model`), for converters that read one."""
    from sentencepiece import sentencepiece_model_pb2

    # generated protobuf classes carry no type information
    pb: Any = sentencepiece_model_pb2

    kind = pb.ModelProto.SentencePiece.Type
    model = pb.ModelProto()
    for i, piece in enumerate(PIECES):
        if piece == UNK:
            type_ = kind.UNKNOWN
        elif piece in SPECIALS:
            type_ = kind.CONTROL
        elif piece in BYTES:
            type_ = kind.BYTE
        else:
            type_ = kind.NORMAL
        # scores only order merges, and a character vocabulary has none: keep them distinct and falling
        model.pieces.add(piece=piece, score=0.0 if type_ != kind.NORMAL else -float(i), type=type_)
    spec = model.trainer_spec
    spec.model_type = pb.TrainerSpec.ModelType.BPE
    spec.vocab_size = VOCAB_SIZE
    spec.byte_fallback = True
    spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id = (TOKEN_IDS[t] for t in (UNK, BOS, IM_END, PAD))
    spec.unk_piece, spec.bos_piece, spec.eos_piece, spec.pad_piece = UNK, BOS, IM_END, PAD
    norm = model.normalizer_spec
    norm.name = "identity"
    norm.add_dummy_prefix = False
    norm.remove_extra_whitespaces = False
    norm.escape_whitespaces = True
    return bytes(model.SerializeToString())
