"""Small pools of names for seeded entities."""

FIRST = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Farid", "Grace", "Hiro", "Ines", "Jonas",
         "Kemi", "Luca", "Maya", "Nils", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara"]
LAST = ["Alvarez", "Brooks", "Chen", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad",
        "Ivanova", "Jensen", "Kowalski", "Larsen", "Moreau", "Novak", "Okafor", "Petrov"]
STREETS = ["Elm Street", "Oak Avenue", "Maple Road", "Harbor Lane", "Cedar Court",
           "Mill Road", "Station Square", "Birch Way"]
CITIES = ["Springfield", "Riverton", "Lakeside", "Fairview", "Brookfield", "Ashford"]
GENERIC_OFF_DOMAIN = [
    "What will the weather be like in Lisbon tomorrow?",
    "Can you translate 'good morning' into Japanese for me?",
    "Please book me a table for two at an Italian restaurant tonight.",
    "What's the capital of Australia?",
    "Can you recommend a good laptop for video editing?",
    "Please call me a taxi to the airport.",
]
#: What each off-domain request needs, for grading a reply that makes no call:
#: ``action`` (something only a tool could do: the reply must say it cannot, and must not claim
#: it did), ``live_data`` (facts only a tool could look up: the reply must say it cannot, not
#: make them up), ``knowledge`` (a general question: answering it without a tool is fine).
REQUEST_KINDS = {
    "What will the weather be like in Lisbon tomorrow?": "live_data",
    "Can you translate 'good morning' into Japanese for me?": "knowledge",
    "Please book me a table for two at an Italian restaurant tonight.": "action",
    "What's the capital of Australia?": "knowledge",
    "Can you recommend a good laptop for video editing?": "knowledge",
    "Please call me a taxi to the airport.": "action",
    # retail
    "Can you transfer $50 from my checking account to my savings account?": "action",
    "Please add a dentist appointment to my calendar for next Tuesday at 9:00.": "action",
    "Can you tell me when your new winter jackets will be in stock?": "live_data",
    # calendar
    "Please email the agenda for tomorrow's meeting to my whole team.": "action",
    "What time is it in Tokyo right now?": "live_data",
    "Can you cancel my order W1234567? I ordered it by mistake.": "action",
    # files
    "Can you print my report on the office printer?": "action",
    "Please email /docs/budget_q1.txt to my manager.": "action",
    "What's my current account balance?": "live_data",
    # bank
    "What is today's exchange rate between euros and US dollars?": "live_data",
    "Can you lower the interest rate on my mortgage?": "action",
    "Please reschedule my meeting with the bank advisor to Friday at 10:00.": "action",
}


def person(rng) -> tuple[str, str]:
    """(full name, email)."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return f"{first} {last}", f"{first.lower()}.{last.lower()}@example.com"


def address(rng) -> str:
    return f"{rng.randint(2, 98)} {rng.choice(STREETS)}, {rng.choice(CITIES)}"
