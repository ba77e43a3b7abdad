"""One panel per dashboard tab. Panels wire controls to models and records to views; no maths here."""
