// Child process of the bench's equal-load phase: runs the paced driver (paced.ts) for the parent.
import { servePacedJobs } from './paced.js'

servePacedJobs()
