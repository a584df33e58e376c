"""The job queue, below the services that schedule work and the handlers that do it: jobs as
rows in the database (``queue``), the kinds of job and their payloads (``kinds``), and the loop
that claims due jobs and runs whichever handler was registered for their kind (``scheduler``).
The handlers themselves live above the services, in ``bot.jobs``."""
