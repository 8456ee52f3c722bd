"""Rebuild captions.jsonl from the Debian package iso-codes (not run by the tests; the output
is committed). Official country names: English from
/usr/share/iso-codes/json/iso_3166-1.json, their translations from
/usr/share/locale/{de,ja,zh_CN,th}/LC_MESSAGES/iso_3166-1.mo. Every fifth name with all four
translations, in the JSON's order, each language's caption under its own image URL."""

import gettext
import json
from pathlib import Path

LOCALES = {"de": "de", "ja": "ja", "zh": "zh_CN", "th": "th"}
HERE = Path(__file__).parent


def main() -> None:
    catalogs = {}
    for lang, locale in LOCALES.items():
        with open(f"/usr/share/locale/{locale}/LC_MESSAGES/iso_3166-1.mo", "rb") as f:
            catalogs[lang] = gettext.GNUTranslations(f)._catalog
    with open("/usr/share/iso-codes/json/iso_3166-1.json", encoding="utf-8") as f:
        countries = json.load(f)["3166-1"]
    names = [c["official_name"] for c in countries if "official_name" in c
             and all(c["official_name"] in cat for cat in catalogs.values())][::5]
    with open(HERE / "captions.jsonl", "w", encoding="utf-8") as out:
        for n, name in enumerate(names):
            texts = {"en": name, **{lang: cat[name] for lang, cat in catalogs.items()}}
            for lang, text in texts.items():
                row = {"url": f"https://images.example.org/{lang}/{n}.png", "caption": text}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
