"""The built-in simulated OpenNebula cloud: replay memory demand through the decision core."""
