"""A seeded corpus of varied text for the tokenizer parity test and benchmark: code, CJK, emoji,
whitespace runs, long numbers, special-token text, mixed scripts, combining marks, contractions,
newlines and tabs, and random assigned Unicode. Deterministic for a given seed."""
from __future__ import annotations

import random
import sys
import unicodedata
from typing import Callable, List

SPECIALS = ["<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|endofprompt|>"]
WORDS = ("the of and to in is you that it he was for on are as with his they I at be this have from or one "
         "had by word but not what all were we when your can said there use an each which she do how their "
         "if will up other about out many then them these so some her would make like him into time has look "
         "two more write go see number no way could people my than first water been call who oil its now find "
         "HTTP JSON API URL OAuth iPhone McDonald GPT-4o o200k tokenizer naïve café résumé coöperate").split()
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'M", "'LL", "'D", "'ſ",
                "'x", "'", "''", "’s", "'re'"]
SCRIPTS = {
    "cjk": "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴急号复环团钟台",
    "kana": "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをんアイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲンー・",
    "hangul": "가나다라마바사아자차카타파하한국어대한민국서울입니다감사합니다안녕하세요",
    "cyrillic": "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ",
    "greek": "αβγδεζηθικλμνξοπρστυφχψωΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩάέήίόύώϊϋΐΰ",
    "arabic": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي ءآأؤإئ٠١٢٣٤٥٦٧٨٩ًٌٍَُِّْ",
    "hebrew": "אבגדהוזחטיכלמנסעפצקרשתךםןףץ",
    "devanagari": "अआइईउऊएऐओऔकखगघङचछजझञटठडढणतथदधनपफबभमयरलवशषसहािीुूेैोौंः्०१२३४५६७८९",
    "thai": "กขคงจฉชซญดตถทธนบปผพฟภมยรลวศษสหอฮะาิีึืุูเแโใไๅ่้๊๋",
    "latin-ext": "ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞßàáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿĀāĂăĄąĆćČčĎďĐđĒēĘęĚěĞğĪīİıŁłŃńŇňŌōŐőŒœŘřŚśŞşŠšŢţŤťŪūŮůŰűŸŹźŻżŽžſǅǈǋǲ",
}
EMOJI = ["🙂", "😀", "👍", "👍🏽", "❤️", "🔥", "🎉", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "🇯🇵", "🧑🏿‍💻", "✅", "⚠️", "☃", "🤖",
         "1️⃣", "#️⃣", "🫠", "😂😂😂"]
SPACES = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", " \n", "\n ", "\u00a0", "\u3000", "\u2028",
          "\u2029", "\u2003", "\u000b", "\u000c", "\u0085", " \t \n", "\n\n\n\n", "    ", "\r\n\r\n"]
MARKS = ["\u0300", "\u0301", "\u0302", "\u0303", "\u0308", "\u0327", "\u20dd", "\u0903", "\u093e", "\u0e31", "\u05b7",
         "\u064b", "\ufe0f", "\u200d", "\u0301\u0323"]
PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + ["...", "—", "–", "«", "»", "“", "”", "’", "…", "•", "€", "£",
                                                     "¥", "©", "®", "™", "°", "±", "§", "¶", "//", "///", "->", "=>"]
NUMBERS = ["0", "7", "42", "123", "1234", "12345", "123456", "3.14159", "1,000,000", "2024-06-01", "0x1F", "1e-9",
           "٣٤٥", "१२३", "１２３", "²³", "½", "Ⅻ", "ⅷ", "①②", "๑๒๓"]
CODE = [
    "def {a}({b}, {c}=None):\n    if {b} is None:\n        return []\n    return [{c} for _ in range({b})]\n",
    "func {a}(_ {b}: Int) -> [String] {{\n\tlet {c} = {b} * 2\n\treturn [\"\\({c})\"]\n}}\n",
    "const {a} = async ({b}) => {{ await fetch(`/api/${{{b}}}`); }};\n",
    "SELECT {a}, COUNT(*) FROM {b} WHERE {c} > 10 GROUP BY {a};",
    "{{\"{a}\": [1, 2, 3], \"{b}\": {{\"{c}\": null, \"ok\": true}}}}",
    "<div class=\"{a}\">\n  <span id='{b}'>{c}</span>\n</div>\n",
    "#include <stdio.h>\nint main(void) {{ printf(\"%d\\n\", {a}); return 0; }}\n",
    "    {a}_{b} = self.{c}.get('{a}', 0)  # TODO: handle {b}'s case\r\n",
    "fn {a}<'a>(x: &'a str) -> Option<&'a str> {{ x.split_once(':').map(|(k, _)| k) }}",
    "$ curl -s https://example.com/{a}?{b}={c} | jq '.[] | .{a}'\n",
]


def _assigned(rng: random.Random, low: int, high: int) -> str:
    """A random assigned, non-surrogate scalar (Python's Unicode data: assigned long enough
    ago that every Unicode table involved agrees)."""
    while True:
        c = chr(rng.randint(low, high))
        if unicodedata.category(c) not in ("Cn", "Cs", "Co"):
            return c


def _word(rng: random.Random) -> str:
    w = rng.choice(WORDS)
    r = rng.random()
    if r < 0.1:
        return w.upper()
    if r < 0.2:
        return w.capitalize()
    return w


def _ident(rng: random.Random) -> str:
    parts = [_word(rng).lower().replace("-", "") for _ in range(rng.randint(1, 3))]
    style = rng.randint(0, 2)
    if style == 0:
        return "_".join(parts)
    if style == 1:
        return parts[0] + "".join(p.capitalize() for p in parts[1:])
    return "".join(p.capitalize() for p in parts)


def _script(rng: random.Random, name: str, n: int) -> str:
    letters = SCRIPTS[name]
    return "".join(rng.choice(letters) for _ in range(n))


def _prose(rng: random.Random, n: int) -> str:
    out = []
    for _ in range(n):
        w = _word(rng)
        if rng.random() < 0.15:
            w += rng.choice(CONTRACTIONS)
        out.append(w)
        if rng.random() < 0.1:
            out.append(rng.choice(PUNCT))
    return " ".join(out)


GENERATORS: List[Callable[[random.Random], str]] = [
    lambda r: _prose(r, r.randint(1, 30)),
    lambda r: r.choice(CODE).format(a=_ident(r), b=_ident(r), c=_ident(r)),
    lambda r: _script(r, "cjk", r.randint(1, 40)) + r.choice(["。", "，", "！", "", " ", "\n"]),
    lambda r: _script(r, "kana", r.randint(1, 30)) + _script(r, "cjk", r.randint(0, 5)),
    lambda r: _script(r, "hangul", r.randint(1, 20)) + " " + _script(r, "hangul", r.randint(1, 10)),
    lambda r: "".join(r.choice(EMOJI) + r.choice(["", " ", "", _word(r)]) for _ in range(r.randint(1, 8))),
    lambda r: "".join(r.choice(SPACES) + r.choice(["", _word(r), r.choice(PUNCT), r.choice(NUMBERS)])
                      for _ in range(r.randint(1, 10))),
    lambda r: "".join(r.choice("0123456789") for _ in range(r.randint(1, 60))),
    lambda r: " ".join(r.choice(NUMBERS) for _ in range(r.randint(1, 10))),
    lambda r: "".join(r.choice([r.choice(SPECIALS), _word(r), " ", "\n", r.choice(SPECIALS)[:r.randint(1, 8)]])
                      for _ in range(r.randint(1, 8))),
    lambda r: " ".join(_script(r, r.choice(list(SCRIPTS)), r.randint(1, 12)) for _ in range(r.randint(1, 6))),
    lambda r: "".join((r.choice("aeouAEOU" + SCRIPTS["devanagari"][:20]) if r.random() < 0.5 else "")
                      + "".join(r.choice(MARKS) for _ in range(r.randint(1, 3))) for _ in range(r.randint(1, 8))),
    lambda r: " ".join(_word(r) + r.choice(CONTRACTIONS) + r.choice(["", "s", "S", "x", "'"])
                       for _ in range(r.randint(1, 6))),
    lambda r: "".join(_assigned(r, 0x20, 0x2FFF) for _ in range(r.randint(1, 20))),
    lambda r: "".join(_assigned(r, 0x1F000, 0x1FAFF) if r.random() < 0.5 else _assigned(r, 0x20, 0x24F)
                      for _ in range(r.randint(1, 12))),
    lambda r: "".join(r.choice(PUNCT + SPACES + MARKS + NUMBERS + ["a", "Z", "é", "ß", "İ", "ǅ", "ſ", "'", "/"])
                      for _ in range(r.randint(1, 25))),
    lambda r: r.choice(PUNCT) * r.randint(1, 80) + r.choice(["", "\n", "/", "\r\n", "x"]),
    lambda r: r.choice(["", " "]) + "".join(r.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
                                            for _ in range(r.randint(20, 300))),
    lambda r: "\n".join(_prose(r, r.randint(5, 40)) for _ in range(r.randint(2, 6))) + r.choice(SPACES),
    # Any assigned scalar, supplementary planes included (CJK extension G, tags, variation
    # selectors: scalars past the pre-tokenizer's class table), next to letters and spaces.
    lambda r: "".join(r.choice([_assigned(r, 0xA0, 0x3134A), _assigned(r, 0xE0001, 0xE01EF), "a", "Q", " ", "'s"])
                      for _ in range(r.randint(1, 16))),
    # Long single pieces (the merge's heap path): letter runs and punctuation runs of 257+ bytes.
    lambda r: "".join(r.choice("etaoinshrdlcum") for _ in range(r.randint(257, 3000))),
    lambda r: " " + "".join(r.choice("=-*#~.") for _ in range(r.randint(257, 1500))),
]


EDGES = ["", " ", "\n", "\r\n", "  ", "'", "'s", "ſ", "<|", "<|endoftext|", "<|endoftext|>",
         "<|endoftext|><|endoftext|>", " <|endoftext|> ", "<|endoftext|>\n", "a<|endofprompt|>", "\u0301", "🙂",
         "\t\t\t", "x ", " x", "1234567890123", "\u00a0\u00a0x", "\u3000", "A'LL", "a'S'T"]


def corpus(seed: int, count: int) -> List[str]:
    """`count` strings: a few fixed edge cases, then each generated kind about equally often."""
    rng = random.Random(seed)
    return EDGES + [GENERATORS[i % len(GENERATORS)](rng) for i in range(count - len(EDGES))]


def mixed_text(seed: int, size: int) -> str:
    """About `size` UTF-8 bytes of mixed text (for the benchmark): mostly prose and code, with
    the other kinds mixed in."""
    rng = random.Random(seed)
    parts: List[str] = []
    total = 0
    weights = [6, 4, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 1, 3, 0, 0, 0]
    while total < size:
        text = rng.choices(GENERATORS, weights=weights)[0](rng) + rng.choice([" ", "\n", "\n\n"])
        parts.append(text)
        total += len(text.encode())
    return "".join(parts)


if __name__ == "__main__":
    for line in corpus(int(sys.argv[1]) if len(sys.argv) > 1 else 7, 40):
        print(repr(line))
