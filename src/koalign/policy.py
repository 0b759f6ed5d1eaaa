"""The safe-response policy of one category, resolved: statute and contact ids expanded.

Used by ``koalign policy show``, by the respond stage (the policy system prompt) and by judges.
"""

from __future__ import annotations

from typing import Any

from koalign.locale import Locale
from koalign.locale_schema import Article, Contact, Law


def article_view(law: Law, article: Article | None) -> dict[str, Any]:
    view: dict[str, Any] = {"law_id": law.id, "law": law.name, "aliases": law.aliases}
    if article is not None:
        view.update(
            article=article.article,
            title=article.title,
            summary=article.summary,
            penalty=article.penalty,
            effective=article.effective.isoformat() if article.effective else None,
            status=article.status,
            confidence=article.confidence,
        )
    return view


def contact_view(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "name": contact.name,
        "number": contact.number,
        "url": contact.url,
        "purpose": contact.purpose,
        "hours": contact.hours,
        "status": contact.status,
        "confidence": contact.confidence,
    }


def resolved_policy(loc: Locale, category_id: str) -> dict[str, Any]:
    """The category's policy with every reference expanded (the locale is already cross-checked)."""
    category = loc.taxonomy.category(category_id)
    domain = loc.taxonomy.domain_of(category_id)
    cp = loc.policy.policies[category_id]
    statutes = []
    for s in cp.p1_statutes:
        law, article = loc.resolve_ref(s.ref)
        statutes.append({"ref": s.ref, "why": s.why, **article_view(law, article)})
    populations = []
    for pop in cp.p2_populations:
        refs = [article_view(*loc.resolve_ref(r)) | {"ref": r} for r in pop.refs]
        populations.append({"group": pop.group, "protections": pop.protections, "statutes": refs})
    contacts = []
    for contact_id in cp.p3_contacts:
        contact = loc.contacts.contact(contact_id)
        assert contact is not None  # guaranteed by cross_check
        contacts.append(contact_view(contact))
    return {
        "category": category.id,
        "name_ko": category.name_ko,
        "name_en": category.name_en,
        "domain": {"id": domain.id, "name_ko": domain.name_ko, "name_en": domain.name_en},
        "principles": cp.principles,
        "applies_when": cp.applies_when,
        "does_not_apply": cp.does_not_apply,
        "benign_prompts": cp.benign_prompts,
        "p1_statutes": statutes,
        "p1_norms": cp.p1_norms,
        "p2_populations": populations,
        "p3_kernel": cp.p3_kernel,
        "p3_contacts": contacts,
        "p3_procedures": cp.p3_procedures,
        "do": cp.do,
        "dont": cp.dont,
        "examples": [e.model_dump() for e in cp.examples],
    }
