"""Writes memos.jsonl: 120 short event memos, each with a question about the day of the event or
what to bring (alternating), from a fixed seed: `python make_memos.py`."""
from pathlib import Path
import json, random
rng = random.Random(19)
cities = ["Madrid","Lisbon","Oslo","Vienna","Dublin","Prague","Warsaw","Athens","Helsinki","Berlin","Rome","Zurich","Brussels","Budapest","Stockholm","Copenhagen"]
days = ["Monday","Tuesday","Wednesday","Thursday","Friday","Saturday"]
names = ["Alice","Bruno","Carla","Daniel","Elena","Farid","Greta","Hugo","Ines","Jonas","Karin","Liam","Maya","Nikos","Olga","Pedro"]
things = ["umbrella","laptop","passport","notebook","badge","charger","helmet","camera"]
events = ["team workshop","sales offsite","product review","annual retreat","training day","design sprint"]
filler = [
 "The agenda will be shared in the usual folder a few days before.",
 "Coffee and lunch are covered by the department budget.",
 "Remember that travel expenses must be filed within thirty days.",
 "The facilities team has confirmed that the rooms are accessible.",
 "We expect around forty colleagues from four different offices.",
 "Slides should follow the company template and be kept short.",
 "There will be time for questions at the end of each session.",
 "Parking is limited, so public transport is recommended.",
 "Please keep the evening free for the team dinner.",
 "Feedback forms will be sent out after the event.",
]
fields = [("day", "On which day of the week is the {event}?"),
          ("item", "What must every participant bring?")]
rows = []
for i in range(120):
    city, other = rng.sample(cities, 2)
    day = rng.choice(days); contact, sender = rng.sample(names, 2); thing = rng.choice(things)
    event = rng.choice(events)
    facts = [f"The {event} will take place in {city} on {day}.",
             f"Every participant must bring a {thing}.",
             f"Questions go to {contact}, who is organising it this year.",
             f"Last year the event was held in {other}."]
    body = rng.sample(filler, 4)
    sents = facts + body
    rng.shuffle(sents)
    memo = f"From: {sender}\nSubject: {event}\n\nHello everyone,\n\n" + " ".join(sents) + f"\n\nBest regards,\n{sender}"
    field, q = fields[i % 2]
    answer = {"city": city, "day": day, "contact": contact, "item": thing}[field]
    rows.append({"id": f"m{i:03d}", "memo": memo, "question": q.format(event=event), "answer": answer, "field": field})
with open(Path(__file__).with_name("memos.jsonl"), "w") as f:
    for r in rows: f.write(json.dumps(r) + "\n")
